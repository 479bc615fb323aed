/**
 * SMP commands and responses at v6–v7 (simplexmq `protocol/simplex-messaging.md`, "SMP commands";
 * the reference's `Protocol.hs` `protocolP`/`encodeProtocol`, whose NEW and IDS forms below v9 are
 * the ones served here — docs/protocol/smp.md, "Spec and reference"). Client commands are parsed
 * (the listener) and encoded (the browser bridge, next); server messages the other way round.
 */
import { ascii, asciiOf, Reader, Writer } from "./encoding.ts";
import { decodeSpki, encodeSpki, type PublicKey } from "./keys.ts";

export type SmpCommand =
  | { tag: "NEW"; rcvAuthKey: PublicKey; rcvDhKey: PublicKey; basicAuth?: Uint8Array; subscribe: boolean }
  | { tag: "KEY"; senderKey: PublicKey }
  | { tag: "SKEY"; senderKey: PublicKey }
  | { tag: "SUB" }
  | { tag: "GET" }
  | { tag: "ACK"; msgId: Uint8Array }
  | { tag: "OFF" }
  | { tag: "DEL" }
  | { tag: "SEND"; notification: boolean; body: Uint8Array }
  | { tag: "PING" };

export type CommandError = "UNKNOWN" | "SYNTAX" | "PROHIBITED" | "NO_AUTH" | "HAS_AUTH" | "NO_ENTITY";
/** The SMP ErrorType values this listener answers with. */
export type SmpError =
  | { type: "BLOCK" }
  | { type: "SESSION" }
  | { type: "CMD"; cmd: CommandError }
  | { type: "AUTH" }
  | { type: "QUOTA" }
  | { type: "NO_MSG" }
  | { type: "LARGE_MSG" }
  | { type: "INTERNAL" };

export type SmpResponse =
  | { tag: "IDS"; rcvId: Uint8Array; sndId: Uint8Array; srvDhKey: Uint8Array }
  | { tag: "MSG"; msgId: Uint8Array; body: Uint8Array }
  | { tag: "OK" }
  | { tag: "END" }
  | { tag: "PONG" }
  | { tag: "ERR"; error: SmpError };

export type ParsedCommand = { ok: true; command: SmpCommand } | { ok: false; error: CommandError };

const SP = 0x20;
const syntax: ParsedCommand = { ok: false, error: "SYNTAX" };

function key(r: Reader): PublicKey | undefined {
  const der = r.shortString();
  return der ? decodeSpki(der) : undefined;
}

/**
 * Parse a command at `version` (6 or 7). Unknown tag → CMD UNKNOWN; known tag with bad parameters
 * → CMD SYNTAX. SKEY (v9) parses at every version, as in the reference; below v9 no queue
 * accepts it (the listener answers AUTH).
 */
export function parseCommand(bytes: Uint8Array, _version: number): ParsedCommand {
  let end = bytes.indexOf(SP);
  if (end < 0) end = bytes.length;
  const tag = asciiOf(bytes.subarray(0, end));
  const r = new Reader(bytes.subarray(end));
  const done = (command: SmpCommand): ParsedCommand => (r.done ? { ok: true, command } : syntax);
  switch (tag) {
    case "PING":
    case "SUB":
    case "GET":
    case "OFF":
    case "DEL":
      return done({ tag });
    case "KEY":
    case "SKEY": {
      if (!r.expect(SP)) return syntax;
      const k = key(r);
      return k ? done({ tag, senderKey: k }) : syntax;
    }
    case "ACK": {
      if (!r.expect(SP)) return syntax;
      const msgId = r.shortString();
      return msgId ? done({ tag, msgId: msgId.slice() }) : syntax;
    }
    case "SEND": {
      if (!r.expect(SP)) return syntax;
      // MsgFlags: 'T' or 'F', then any further flag characters up to the space (ignored).
      const f = r.byte();
      if (f !== 0x54 && f !== 0x46) return syntax;
      while (!r.done && r.peek() !== SP) r.byte();
      if (!r.expect(SP)) return syntax;
      return { ok: true, command: { tag, notification: f === 0x54, body: r.tail().slice() } };
    }
    case "NEW": {
      if (!r.expect(SP)) return syntax;
      const rcvAuthKey = key(r);
      const rcvDhKey = key(r);
      if (!rcvAuthKey || !rcvDhKey) return syntax;
      let basicAuth: Uint8Array | undefined;
      if (r.peek() === 0x41 /* A */) {
        r.byte();
        basicAuth = r.shortString();
        if (!basicAuth) return syntax;
      }
      const mode = r.byte();
      if (mode !== 0x53 /* S */ && mode !== 0x43 /* C */) return syntax;
      return done({
        tag,
        rcvAuthKey,
        rcvDhKey,
        subscribe: mode === 0x53,
        ...(basicAuth ? { basicAuth: basicAuth.slice() } : {}),
      });
    }
    default:
      return { ok: false, error: "UNKNOWN" };
  }
}

/** Encode a command (the client side; the bridge builds commands in the browser). */
export function encodeCommand(c: SmpCommand): Uint8Array {
  const w = new Writer().ascii(c.tag);
  switch (c.tag) {
    case "NEW":
      w.byte(SP).shortString(encodeSpki(c.rcvAuthKey)).shortString(encodeSpki(c.rcvDhKey));
      if (c.basicAuth) w.ascii("A").shortString(c.basicAuth);
      return w.ascii(c.subscribe ? "S" : "C").finish();
    case "KEY":
    case "SKEY":
      return w.byte(SP).shortString(encodeSpki(c.senderKey)).finish();
    case "ACK":
      return w.byte(SP).shortString(c.msgId).finish();
    case "SEND":
      return w
        .byte(SP)
        .ascii(c.notification ? "T" : "F")
        .byte(SP)
        .bytes(c.body)
        .finish();
    default:
      return w.finish();
  }
}

export function encodeError(e: SmpError): string {
  return e.type === "CMD" ? `CMD ${e.cmd}` : e.type;
}

/** Encode a server message at v6–v7. */
export function encodeResponse(m: SmpResponse): Uint8Array {
  const w = new Writer().ascii(m.tag);
  switch (m.tag) {
    case "IDS":
      return w.byte(SP).shortString(m.rcvId).shortString(m.sndId).shortString(m.srvDhKey).finish();
    case "MSG":
      return w.byte(SP).shortString(m.msgId).bytes(m.body).finish();
    case "ERR":
      return w.byte(SP).ascii(encodeError(m.error)).finish();
    default:
      return w.finish();
  }
}

const ERROR_TYPES = new Set(["BLOCK", "SESSION", "AUTH", "QUOTA", "NO_MSG", "LARGE_MSG", "INTERNAL"]);
const COMMAND_ERRORS = new Set(["UNKNOWN", "SYNTAX", "PROHIBITED", "NO_AUTH", "HAS_AUTH", "NO_ENTITY"]);

/** Parse a server message (the client side). */
export function parseResponse(bytes: Uint8Array): SmpResponse | undefined {
  let end = bytes.indexOf(SP);
  if (end < 0) end = bytes.length;
  const tag = asciiOf(bytes.subarray(0, end));
  const r = new Reader(bytes.subarray(end));
  switch (tag) {
    case "OK":
    case "END":
    case "PONG":
      return r.done ? { tag } : undefined;
    case "IDS": {
      if (!r.expect(SP)) return undefined;
      const rcvId = r.shortString();
      const sndId = r.shortString();
      const srvDhKey = r.shortString();
      return rcvId && sndId && srvDhKey && r.done ? { tag, rcvId, sndId, srvDhKey } : undefined;
    }
    case "MSG": {
      if (!r.expect(SP)) return undefined;
      const msgId = r.shortString();
      return msgId ? { tag, msgId, body: r.tail() } : undefined;
    }
    case "ERR": {
      if (!r.expect(SP)) return undefined;
      const text = asciiOf(r.tail());
      const [head, sub] = text.split(" ");
      if (head === "CMD" && sub && COMMAND_ERRORS.has(sub))
        return { tag, error: { type: "CMD", cmd: sub as CommandError } };
      if (head && ERROR_TYPES.has(head) && sub === undefined)
        return { tag, error: { type: head } as SmpError };
      return undefined;
    }
    default:
      return undefined;
  }
}

/** `MSG` payload before the server→recipient layer: timestamp ‖ flags ‖ " " ‖ body (RcvMsgBody). */
export function encodeRcvMsgBody(
  timestampSeconds: number,
  notification: boolean,
  body: Uint8Array,
): Uint8Array {
  return new Writer()
    .int64(timestampSeconds)
    .ascii(notification ? "T" : "F")
    .byte(SP)
    .bytes(body)
    .finish();
}

export const PING = ascii("PING");
