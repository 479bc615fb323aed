#!/usr/bin/env -S npx tsx
/**
 * `loft` — Loft on the command line (docs/user-guide.md "The command line"). This first part:
 *
 *   loft id [--identity FILE] [--name NAME]     create (with --name) or open the identity; print its id
 *   loft link --server https://loft.example     print this identity's contact link for that server
 *
 * The identity file (default `./loft-identity.json`) is sealed with the passphrase in the
 * environment variable LOFT_PASSPHRASE (or the one `--passphrase-env VAR` names). `send`,
 * `listen` and `expose` (a headless engine) are not written yet: they say so and exit 2.
 */
import { toHex } from "../core/bytes.ts";
import { contactLinkUrl } from "../core/identity/contact-link.ts";
import { createIdentityFile, IdentityFileError, openIdentityFile } from "./identity-file.ts";

const USAGE = `usage: loft id [--identity FILE] [--name NAME]
       loft link --server https://loft.example [--identity FILE]
passphrase: in $LOFT_PASSPHRASE, or the variable --passphrase-env names`;

/** The value after `--name`, undefined when the flag is absent; a flag with no value is a usage error. */
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith("--")) throw new UsageError(`--${name} needs a value`);
  return value;
}

function passphrase(args: string[]): string {
  const name = flag(args, "passphrase-env") ?? "LOFT_PASSPHRASE";
  const value = process.env[name];
  if (!value) throw new UsageError(`set the passphrase in $${name} (it is never read from the command line)`);
  return value;
}

class UsageError extends Error {}

async function run(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const file = flag(args, "identity") ?? "loft-identity.json";
  switch (command) {
    case "id": {
      const name = flag(args, "name");
      const user = name
        ? await createIdentityFile(file, name, passphrase(args))
        : await openIdentityFile(file, passphrase(args));
      console.log(`${toHex(user.identity.verified.identity_key)}  ${user.identity.verified.username}`);
      return 0;
    }
    case "link": {
      const server = flag(args, "server");
      if (!server || !/^https?:\/\/[^/]+\/?$/.test(server))
        throw new UsageError("--server https://host is required");
      const user = await openIdentityFile(file, passphrase(args));
      const ws = server.replace(/^http/, "ws").replace(/\/$/, "");
      const link = contactLinkUrl(server, {
        identity: user.identity,
        signaling: [`${ws}/signal`],
        relay: [`${ws}/relay`],
      });
      if (!link.ok) throw new UsageError(link.error.message);
      console.log(link.value);
      return 0;
    }
    case "send":
    case "listen":
    case "expose":
      console.error(`loft ${command}: not available yet (the headless engine is the next step)`);
      return 2;
    default:
      console.error(USAGE);
      return command === undefined || command === "help" || command === "--help" ? 0 : 1;
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof IdentityFileError || e instanceof UsageError) {
      console.error(`loft: ${e.message}`);
      process.exit(1);
    }
    console.error(e);
    process.exit(70);
  },
);
