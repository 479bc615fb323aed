/**
 * `npm run noise:peer -- --role initiator|responder --host H --port P --static-hex HEX
 *                        [--prologue STR] [--message STR] [--repeat N]`
 *
 * Plain `Noise_XX_25519_ChaChaPoly_BLAKE2s` (core/noise) over TCP, every message prefixed by a
 * 2-byte big-endian length (host/tcp-link.ts), with empty handshake payloads — the shape any
 * other Noise implementation can talk to (test/interop/ runs it against python3-dissononce).
 *
 * Both roles print `remote_static=HEX` (the peer's static public key) and `handshake_hash=HEX`.
 * The responder first prints `listening=PORT` (useful with --port 0), accepts one connection and
 * echoes every transport message back until the peer closes. The initiator sends `--message`
 * (`--repeat` times, default 1), printing `echo=...` for each reply, then closes.
 * Errors go to stderr as `error=CODE detail` with exit status 1.
 */
import { parseArgs } from "node:util";
import { fromHex, fromUtf8, toHex, utf8 } from "../core/bytes.ts";
import { isLoftError, type Result } from "../core/errors.ts";
import type { Link } from "../core/link/link.ts";
import { HandshakeState } from "../core/noise/handshake-state.ts";
import { XX } from "../core/noise/patterns.ts";
import { keyPairFromPrivate } from "../core/noise/primitives.ts";
import type { NoiseTransport } from "../core/noise/transport.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { listenTcp, TcpLink } from "../host/tcp-link.ts";

const EMPTY = new Uint8Array(0);

// A Node peer: the node:crypto backend (host/crypto-node.ts), each primitive checked against noble.
const crypto = await createNodeCryptoProvider();

function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

/** XX over a link with empty payloads; returns the transport (Noise §5.3, §7.5). */
async function handshake(link: Link, hs: HandshakeState): Promise<NoiseTransport> {
  while (hs.status === "write" || hs.status === "read") {
    if (hs.status === "write") link.send(must(await hs.writeMessage(EMPTY)));
    else must(await hs.readMessage(await link.receive()));
  }
  return must(await hs.finish());
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      "static-hex": { type: "string" },
      prologue: { type: "string", default: "" },
      message: { type: "string", default: "hello from loft" },
      repeat: { type: "string", default: "1" },
    },
  });
  const role = values.role;
  if ((role !== "initiator" && role !== "responder") || values.port === undefined || !values["static-hex"]) {
    console.error(
      "usage: noise-peer --role initiator|responder --host H --port P --static-hex HEX [--prologue STR] [--message STR] [--repeat N]",
    );
    process.exit(2);
  }
  const staticKeyPair = await keyPairFromPrivate(fromHex(values["static-hex"]), crypto);
  const hs = await HandshakeState.create({
    pattern: XX,
    role,
    prologue: utf8(values.prologue),
    staticKeyPair,
    crypto,
  });
  const port = Number(values.port);

  if (role === "initiator") {
    const link = await TcpLink.connect(values.host, port);
    const transport = await handshake(link, hs);
    report(transport);
    for (let i = 0; i < Number(values.repeat); i++) {
      link.send(must(await transport.send.encryptWithAd(EMPTY, utf8(values.message))));
      const reply = must(await transport.receive.decryptWithAd(EMPTY, await link.receive()));
      console.log(`echo=${fromUtf8(reply)}`);
    }
    transport.wipe();
    link.close("done");
    await link.closed;
    return;
  }

  const accepted = new Promise<TcpLink>((resolve) => {
    const listening = listenTcp(values.host, port, (link) => {
      void listening.then((l) => l.close());
      resolve(link);
    });
    void listening.then((l) => console.log(`listening=${l.port}`));
  });
  const link = await accepted;
  const transport = await handshake(link, hs);
  report(transport);
  for (;;) {
    let frame: Uint8Array;
    try {
      frame = await link.receive();
    } catch (e) {
      if (isLoftError(e) && e.code === "LOFT_ERR_LINK_CLOSED") break; // the initiator is done
      throw e;
    }
    const message = must(await transport.receive.decryptWithAd(EMPTY, frame));
    link.send(must(await transport.send.encryptWithAd(EMPTY, message)));
  }
  transport.wipe();
}

function report(transport: NoiseTransport): void {
  console.log(`remote_static=${toHex(transport.remoteStaticKey)}`);
  console.log(`handshake_hash=${toHex(transport.handshakeHash)}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    const code = isLoftError(e) ? e.code : "error";
    console.error(`error=${code} ${(e as Error).message}`);
    process.exit(1);
  },
);
