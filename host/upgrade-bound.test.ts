/**
 * An upgrade no mounted service answers is refused by the host (503) and its socket destroyed,
 * after `upgradeAnswerMs` (host/host.ts `UPGRADE_ANSWER_MS`; the operator's `--upgrade-answer-ms`,
 * host/standalone.ts `upgradeOptions`), counted in `loft_host_upgrades_unanswered_total` and
 * logged. A browser keeps one WebSocket per host in CONNECTING and queues the rest (RFC 6455
 * §4.1): one unanswered upgrade to /relay held up the page's /signal on the same host:port. The
 * service that never answers is a fault stand-in, the host is the real one; an upgrade a service
 * does answer is left alone.
 */
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { metricValue } from "../test/support/metrics.ts";
import { ConfigError, readConfig } from "./config.ts";
import type { Host, HostedService } from "./host.ts";
import { rawExchange, testHost, upgradeRequest } from "./http-testing.ts";
import { createLogger } from "./log.ts";
import { upgradeOptions } from "./standalone.ts";

let host: Host | undefined;
afterEach(() => host?.close());

function service(path: string, handleUpgrade: HostedService["handleUpgrade"]): HostedService {
  return { name: path.slice(1), path, handleUpgrade, health: () => ({}), close: async () => {} };
}

describe("host: an unanswered upgrade is bounded", () => {
  it("a service that never answers: the host refuses with 503, closes the socket, counts and logs it; an answered one is left alone", async () => {
    const lines: string[] = [];
    host = testHost({
      log: createLogger("host-test", "warn", { write: (line: string) => void lines.push(line) }),
      upgradeAnswerMs: 200,
    });
    const held: Duplex[] = [];
    host.mount(service("/stuck", (_req, socket) => void held.push(socket)));
    const wss = new WebSocketServer({ noServer: true });
    const open: Duplex[] = [];
    host.mount(
      service("/open", (req, socket, head) =>
        wss.handleUpgrade(req, socket, head, () => void open.push(socket)),
      ),
    );
    const port = await host.listen();
    const counted = async (name: string) =>
      metricValue(await host!.registry.metrics(), "loft_host_upgrades_unanswered_total", `service="${name}"`);
    const answer = await rawExchange(port, upgradeRequest("/stuck"));
    expect(answer).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(held).toHaveLength(1);
    expect(held[0]?.destroyed).toBe(true);
    expect(await counted("stuck")).toBe(1);
    const warned = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warned).toEqual([
      expect.objectContaining({
        msg: "upgrade not answered in time: refused with 503",
        service: "stuck",
        upgradeAnswerMs: 200,
      }),
    ]);
    const answered = await rawExchange(port, upgradeRequest("/open"));
    expect(answered).toMatch(/^HTTP\/1\.1 101 /);
    expect(answered).not.toMatch(/503/);
    expect(open).toHaveLength(1);
    expect(await counted("open")).toBe(0);
    expect(lines).toHaveLength(1);
    wss.close();
  });

  it("--upgrade-answer-ms / LOFT_UPGRADE_ANSWER_MS: read from either (the flag wins), refused out of range naming its source", () => {
    const read = (argv: string[], env: Record<string, string> = {}) =>
      readConfig(upgradeOptions, argv, env).upgradeAnswerMs;
    expect(read([])).toBe(5_000);
    expect(read(["--upgrade-answer-ms", "750"])).toBe(750);
    expect(read([], { LOFT_UPGRADE_ANSWER_MS: "2500" })).toBe(2_500);
    expect(read(["--upgrade-answer-ms=900"], { LOFT_UPGRADE_ANSWER_MS: "2500" })).toBe(900);
    const refusal = (argv: string[], env: Record<string, string> = {}) => {
      try {
        read(argv, env);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("expected a ConfigError");
    };
    expect(refusal(["--upgrade-answer-ms", "0"])).toBe(
      '--upgrade-answer-ms: expected an integer in [100, 60000], got "0"',
    );
    expect(refusal([], { LOFT_UPGRADE_ANSWER_MS: "5s" })).toBe(
      'LOFT_UPGRADE_ANSWER_MS: expected an integer in [100, 60000], got "5s"',
    );
  });
});
