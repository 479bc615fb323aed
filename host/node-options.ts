/**
 * Node options of the operator paths (`npm start`, `npm run relay`, `npm run signaling`,
 * deploy/systemd units, deploy/Dockerfile; docs/operations.md, "Idle connections"), in one place
 * so that bench:scale measures what operators run and server/deploy-files.test.ts checks that
 * every path carries them.
 *
 * `--max-semi-space-size=2` (MiB): V8's young generation otherwise grows to 16 MiB semi-spaces
 * under a burst of openings and keeps that garbage between scavenges — about 1 KiB of RSS per
 * connection at 16 000 per process, more than a lean idle connection's live heap
 * (bench/README.md, "bench:scale"). Two MiB keep it small at the price of more frequent minor
 * collections (each cheaper, since it copies what survives of less).
 */
export const SERVER_NODE_OPTIONS: readonly string[] = ["--max-semi-space-size=2"];
