#!/usr/bin/env -S npx tsx
/**
 * `loft` — Loft on the command line, a headless peer (docs/user-guide.md "The command line"):
 *
 *   loft id [--name NAME] [--server URL]       create (with --name) or open the identity; print its id
 *   loft link [--server URL] [--timeout S]     print this identity's contact link
 *   loft accept <link | contact>               add a contact from its link, or accept a contact request
 *   loft contacts [--json]                     list contacts
 *   loft send <contact> <text> [--wait delivered] [--timeout SECONDS]
 *                                              (while `listen`/`expose` runs: handed to it, duplex.ts)
 *   loft listen [--json] [--accept-requests]   print messages as they arrive, until SIGINT/SIGTERM
 *   loft expose http://127.0.0.1:PORT --to <contact>[,<contact>…] [--json]
 *
 * The identity file (default `./loft-identity.json`) is sealed with the passphrase in the
 * environment variable LOFT_PASSPHRASE (or the one `--passphrase-env VAR` names); the peer's state
 * (contacts, ratchets, mailbox keys, the outbox) lives next to it in `<identity file>.state` and its
 * append-only `.state.log`, sealed under a key derived from the identity (state-file.ts). One
 * process per identity.
 */
import { toHex } from "../core/bytes.ts";
import type { UserIdentity } from "../core/identity/identity.ts";
import { EngineRefusal } from "../web/src/engine/api.ts";
import { HandOverError, handOver, serveSends, socketPathOf } from "./duplex.ts";
import { createIdentityFile, IdentityFileError, openIdentityFile } from "./identity-file.ts";
import { contactLine, messageLine, requestLine } from "./output.ts";
import type { HeadlessPeer } from "./peer.ts";
import { fixedLookup, parseResolve } from "./resolve.ts";
import { StateFile, StateFileError, stateKeyOf } from "./state-file.ts";

const USAGE = `usage: loft id [--name NAME] [--server https://loft.example]
       loft link [--server https://loft.example] [--timeout SECONDS]
       loft accept <contact link | contact>
       loft contacts [--json]
       loft send <contact> <text> [--wait delivered] [--timeout SECONDS]
       loft listen [--json] [--accept-requests]
       loft expose http://127.0.0.1:PORT --to <contact>[,<contact>…] [--json]
options: --identity FILE (default ./loft-identity.json), --passphrase-env VAR
passphrase: in $LOFT_PASSPHRASE, or the variable --passphrase-env names
a contact is named by its id, a unique id prefix (8+ hex digits) or its unique name
while listen or expose runs, send hands its message to it (a 0600 socket next to the state file)`;

/** Flags that take a value; every other `--x` is a switch. */
const VALUED = new Set(["identity", "name", "server", "passphrase-env", "wait", "timeout", "to"]);

class UsageError extends Error {}

interface Args {
  positional: string[];
  flags: Map<string, string>;
  switches: Set<string>;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { positional: [], flags: new Map(), switches: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === "--") {
      a.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!x.startsWith("--")) {
      a.positional.push(x);
      continue;
    }
    const name = x.slice(2);
    if (VALUED.has(name)) {
      const value = argv[++i];
      if (value === undefined || value.startsWith("--")) throw new UsageError(`--${name} needs a value`);
      a.flags.set(name, value);
    } else if (["json", "accept-requests", "help"].includes(name)) a.switches.add(name);
    else throw new UsageError(`unknown option --${name}`);
  }
  return a;
}

function passphrase(args: Args): string {
  const name = args.flags.get("passphrase-env") ?? "LOFT_PASSPHRASE";
  const value = process.env[name];
  if (!value) throw new UsageError(`set the passphrase in $${name} (it is never read from the command line)`);
  return value;
}

const identityFile = (args: Args) => args.flags.get("identity") ?? "loft-identity.json";

/**
 * The peer module (the engine and its transports: most of the CLI's start-up), loaded by the
 * commands that need it, once: `loft id`, and a command refused for its arguments, answer without
 * it (0.3 s of CPU instead of 1 s per start).
 */
let peerModule: typeof import("./peer.ts") | undefined;
async function loadPeer(): Promise<typeof import("./peer.ts")> {
  peerModule ??= await import("./peer.ts");
  return peerModule;
}

/** The state file next to an identity file (state-file.ts); its send socket is duplex.ts `socketPathOf`. */
const statePathOf = (identity: string) => `${identity}.state`;

/** The identity, its state (locked for this process) and the server setting, for a command. */
async function openState(
  args: Args,
  name?: string,
  opened?: UserIdentity,
): Promise<{ user: UserIdentity; storage: StateFile }> {
  const file = identityFile(args);
  let user: UserIdentity;
  if (opened) user = opened;
  else if (name !== undefined) user = await createIdentityFile(file, name, passphrase(args));
  else user = await openIdentityFile(file, passphrase(args));
  const storage = await StateFile.open(statePathOf(file), stateKeyOf(user.privateIdentityKey));
  await storage.lock();
  const server = args.flags.get("server");
  if (server) {
    const { settingsForServer } = await loadPeer();
    await storage.setSettings({ ...(await storage.getSettings()), ...settingsForServer(server) });
  }
  return { user, storage };
}

/**
 * Run `f` with the peer; `network`: "start" connects it first, "later" leaves that to `f` (which
 * checks what it was asked before connecting, with `connect`), "none" never connects.
 */
async function withPeer<T>(
  args: Args,
  f: (peer: HeadlessPeer) => Promise<T>,
  network: "start" | "later" | "none" = "start",
  opened?: UserIdentity,
): Promise<T> {
  const { user, storage } = await openState(args, undefined, opened);
  try {
    if (network !== "none" && !(await storage.getSettings()).signalingUrl)
      throw new UsageError("no server set: add --server https://loft.example (remembered for next time)");
    const log = process.env.LOFT_DEBUG ? (m: string) => console.error(`[engine] ${m}`) : undefined;
    const resolve = process.env.LOFT_RESOLVE;
    const lookup = resolve ? fixedLookup(parseResolve(resolve)) : undefined;
    const { HeadlessPeer } = await loadPeer();
    const peer = await HeadlessPeer.create({
      user,
      storage,
      ...(log ? { log } : {}),
      ...(lookup ? { lookup } : {}),
    });
    if (network === "start") await peer.start();
    try {
      return await f(peer);
    } finally {
      await peer.stop();
    }
  } finally {
    await storage.close();
  }
}

/** `--timeout` in seconds (1…86 400), or `fallback`. */
function seconds(args: Args, fallback: number): number {
  const s = Number(args.flags.get("timeout") ?? fallback);
  if (!(s >= 1 && s <= 86_400)) throw new UsageError("--timeout takes 1 to 86400 seconds");
  return s;
}

/** Take `loft send`s for this identity on its state's socket while this process runs (duplex.ts). */
async function takeSends(peer: HeadlessPeer): Promise<() => Promise<void>> {
  try {
    return await serveSends(peer, socketPathOf(peer.storage.path), stateKeyOf(peer.user.privateIdentityKey));
  } catch (e) {
    // (a path longer than a Unix socket's 107 bytes, a read-only folder): the peer runs on without it
    console.error(`loft: \`loft send\` cannot hand messages to this process: ${(e as Error).message}`);
    return async () => {};
  }
}

/** Resolves on SIGINT or SIGTERM (the process then stops its engine and exits 0). */
const terminated = () =>
  new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const [command, ...rest] = args.positional;
  const json = args.switches.has("json");
  switch (command) {
    case "id": {
      const { user, storage } = await openState(args, args.flags.get("name"));
      await storage.close();
      console.log(`${toHex(user.identity.verified.identity_key)}  ${user.identity.verified.username}`);
      return 0;
    }
    case "link":
      return withPeer(args, async (peer) => {
        const link = await peer.link(seconds(args, 10) * 1000);
        if (!link.refs)
          console.error(
            "loft: the relay did not answer in time: this link has no contact address (someone who opens it can write to you only while you are online)",
          );
        console.log(link.url);
        return 0;
      });
    case "accept": {
      const what = rest[0];
      if (!what || rest.length > 1) throw new UsageError("loft accept <contact link | contact>");
      const isLink = /^https?:\/\//.test(what);
      return withPeer(
        args,
        async (peer) => {
          if (isLink) {
            const r = await peer.acceptLink(what);
            console.log(`${r.added ? "added" : "updated"} ${r.id}  ${r.name}`);
          } else {
            const c = await peer.acceptRequest(what);
            console.log(`accepted ${c.id}  ${c.username}`);
          }
          return 0;
        },
        "none",
      );
    }
    case "contacts":
      return withPeer(
        args,
        async (peer) => {
          for (const c of await peer.storage.listContacts()) console.log(contactLine(c, json));
          return 0;
        },
        "none",
      );
    case "send": {
      const [who, ...words] = rest;
      const text = words.join(" ");
      if (!who || !text) throw new UsageError("loft send <contact> <text>");
      const wait = args.flags.get("wait") ?? "left";
      if (wait !== "left" && wait !== "delivered") throw new UsageError("--wait takes delivered");
      const timeout = seconds(args, 60);
      const report = (r: { id: string; to: string; state: string; reason?: string }) => {
        const line = {
          type: "sent",
          id: r.id,
          to: r.to,
          state: r.state,
          ...(r.reason ? { reason: r.reason } : {}),
        };
        console.log(json ? JSON.stringify(line) : `${r.state}${r.reason ? `: ${r.reason}` : ""}`);
        return r.state === "failed" ? 1 : r.state === "queued" || r.state === "sending" ? 3 : 0;
      };
      const user = await openIdentityFile(identityFile(args), passphrase(args));
      try {
        return await withPeer(
          args,
          async (peer) => {
            await peer.contact(who); // an unknown contact is said before connecting
            await peer.start();
            const r = await peer.send(who, text, wait, timeout * 1000);
            return report({ ...r, to: r.contact.id });
          },
          "later",
          user,
        );
      } catch (e) {
        if (!(e instanceof StateFileError && e.code === "locked")) throw e;
        // `loft listen` or `loft expose` holds this identity: hand the message to it (duplex.ts).
        try {
          return report(
            await handOver(
              socketPathOf(statePathOf(identityFile(args))),
              stateKeyOf(user.privateIdentityKey),
              {
                to: who,
                text,
                wait,
                timeout,
              },
            ),
          );
        } catch (h) {
          if (h instanceof HandOverError && h.code === "absent") throw e; // a process without the socket
          throw h;
        }
      }
    }
    case "listen":
      return withPeer(args, async (peer) => {
        const names = new Map((await peer.storage.listContacts()).map((c) => [c.id, c.username]));
        peer.subscribe((e) => {
          if (e.type === "message" && e.message.direction === "in") {
            console.log(messageLine(e.message, names.get(e.message.contactId), json));
          } else if (e.type === "contact-added") {
            void peer.storage.getContact(e.contactId).then(async (c) => {
              if (!c) return;
              names.set(c.id, c.username);
              console.log(requestLine(c, json));
              if (c.request && args.switches.has("accept-requests"))
                await peer.engine.changeContact(c.id, { kind: "accept-request" });
            });
          } else if (e.type === "contact-updated" || e.type === "contact-changed") {
            void peer.storage.getContact(e.contactId).then((c) => c && names.set(c.id, c.username));
          }
        });
        const stopSends = await takeSends(peer);
        console.error(`loft: listening as ${peer.id} (Ctrl-C to stop)`);
        await terminated();
        await stopSends();
        return 0;
      });
    case "expose": {
      const origin = rest[0];
      const to = args.flags.get("to");
      if (!origin || rest.length > 1 || !to)
        throw new UsageError("loft expose http://127.0.0.1:PORT --to <contact>");
      return withPeer(
        args,
        async (peer) => {
          const contacts = await Promise.all(to.split(",").map((w) => peer.contact(w.trim())));
          const { exposeOrigin } = await import("./expose.ts");
          const stopExposing = exposeOrigin(peer, origin, contacts, json);
          await peer.start();
          const stopSends = await takeSends(peer);
          console.error(
            `loft: exposing ${origin} to ${contacts.map((c) => c.username).join(", ")} at /peer/${peer.id}/ (Ctrl-C to stop)`,
          );
          await terminated();
          stopExposing();
          await stopSends();
          return 0;
        },
        "later",
      );
    }
    default:
      console.error(USAGE);
      return command === undefined || command === "help" || args.switches.has("help") ? 0 : 1;
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (
      e instanceof IdentityFileError ||
      e instanceof UsageError ||
      // (a PeerError comes only from the peer module, so only once it is loaded)
      (peerModule !== undefined && e instanceof peerModule.PeerError) ||
      e instanceof StateFileError ||
      e instanceof HandOverError ||
      e instanceof EngineRefusal
    ) {
      console.error(`loft: ${(e as Error).message}`);
      process.exit(1);
    }
    console.error(e);
    process.exit(70);
  },
);
