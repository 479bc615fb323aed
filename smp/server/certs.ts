/**
 * The listener's certificates (docs/operations.md, "SMP listener"; SMP spec, "Server certificate"):
 * an offline Ed25519 CA whose certificate's SHA-256 is the server identity in the `smp://`
 * address, and an online Ed25519 certificate it signs, which TLS presents (chain: online, CA).
 * Generated on first start into `<relay data dir>/smp/` and reused afterwards; the CA's private key
 * is only needed to sign a new online certificate, so an operator may move `ca.key` off the box.
 *
 * Also signs the v7 session key: an X.509 SignedExact SubjectPublicKeyInfo (the X25519 key the
 * server uses for command authenticators) signed by the online key, as the reference does.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
} from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatSmpServerAddress } from "../../core/smp/address.ts";
import {
  bitString,
  boolean,
  explicit,
  integer,
  octetString,
  oid,
  seq,
  set,
  smallInt,
  time,
  utf8String,
} from "./der.ts";

const ED25519 = "1.3.101.112";
const ALG_ED25519 = seq(oid(ED25519));
const CN = "2.5.4.3";
const BASIC_CONSTRAINTS = "2.5.29.19";
const KEY_USAGE = "2.5.29.15";
const DAY_MS = 86_400_000;

export interface SmpCredentials {
  /** PEM chain for node:tls: the online certificate, then the CA. */
  certPem: string;
  keyPem: string;
  /** DER of each certificate of the chain, online first (sent in the v7 server hello). */
  chainDer: Uint8Array[];
  /** SHA-256 of the CA certificate's DER: the server identity. */
  fingerprint: Uint8Array;
  /** The online private key (signs the per-connection session key). */
  onlineKey: KeyObject;
}

const name = (cn: string) => seq(set(seq(oid(CN), utf8String(cn))));

function certificate(opts: {
  subject: string;
  issuer: string;
  publicKeySpki: Uint8Array;
  signer: KeyObject;
  days: number;
  ca: boolean;
}): Uint8Array {
  const now = Date.now();
  const extensions = opts.ca
    ? seq(
        seq(oid(BASIC_CONSTRAINTS), boolean(true), octetString(seq(boolean(true)))),
        // keyCertSign + cRLSign (bits 5 and 6): a BIT STRING with 1 unused bit.
        seq(oid(KEY_USAGE), boolean(true), octetString(Uint8Array.of(0x03, 0x02, 0x01, 0x06))),
      )
    : seq(
        // digitalSignature (bit 0).
        seq(oid(KEY_USAGE), boolean(true), octetString(Uint8Array.of(0x03, 0x02, 0x07, 0x80))),
      );
  const tbs = seq(
    explicit(0, smallInt(2)), // v3
    integer(new Uint8Array(randomBytes(16))),
    ALG_ED25519,
    name(opts.issuer),
    seq(time(new Date(now - 3600_000)), time(new Date(now + opts.days * DAY_MS))),
    name(opts.subject),
    opts.publicKeySpki,
    explicit(3, extensions),
  );
  const signature = sign(null, tbs, opts.signer);
  return seq(tbs, ALG_ED25519, bitString(new Uint8Array(signature)));
}

/** X.509 SignedExact of a SubjectPublicKeyInfo, signed by `signer` (the v7 server session key). */
export function signedPublicKey(spki: Uint8Array, signer: KeyObject): Uint8Array {
  return seq(spki, ALG_ED25519, bitString(new Uint8Array(sign(null, spki, signer))));
}

const pem = (label: string, der: Uint8Array) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .replace(/\n$/, "")}\n-----END ${label}-----\n`;

function fromPem(text: string): Uint8Array {
  const b64 = text.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return new Uint8Array(Buffer.from(b64, "base64"));
}

function writeSecret(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

const spkiOf = (k: KeyObject) => new Uint8Array(k.export({ format: "der", type: "spki" }));

/**
 * Load the listener's credentials from `dir`, creating what is missing: the CA (first start), and
 * an online certificate signed by the CA key when there is none.
 */
export function loadOrCreateCredentials(
  dir: string,
  hostName: string,
): SmpCredentials & { created: boolean } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caCrt = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  const srvCrt = join(dir, "server.crt");
  const srvKey = join(dir, "server.key");
  let created = false;
  if (!existsSync(caCrt)) {
    const ca = generateKeyPairSync("ed25519");
    const der = certificate({
      subject: "Loft SMP CA",
      issuer: "Loft SMP CA",
      publicKeySpki: spkiOf(ca.publicKey),
      signer: ca.privateKey,
      days: 3650,
      ca: true,
    });
    writeSecret(caKey, ca.privateKey.export({ format: "pem", type: "pkcs8" }).toString());
    writeFileSync(caCrt, pem("CERTIFICATE", der));
    created = true;
  }
  const caDer = fromPem(readFileSync(caCrt, "utf8"));
  if (!existsSync(srvCrt) || !existsSync(srvKey)) {
    if (!existsSync(caKey))
      throw new Error(
        `${srvCrt} is missing and ${caKey} is not there to sign a new one: put the CA key back`,
      );
    const caPrivate = createPrivateKey(readFileSync(caKey, "utf8"));
    const online = generateKeyPairSync("ed25519");
    const der = certificate({
      subject: hostName || "Loft SMP server",
      issuer: "Loft SMP CA",
      publicKeySpki: spkiOf(online.publicKey),
      signer: caPrivate,
      days: 365,
      ca: false,
    });
    writeSecret(srvKey, online.privateKey.export({ format: "pem", type: "pkcs8" }).toString());
    writeFileSync(srvCrt, pem("CERTIFICATE", der));
    created = true;
  }
  const onlineDer = fromPem(readFileSync(srvCrt, "utf8"));
  const keyPem = readFileSync(srvKey, "utf8");
  const onlineKey = createPrivateKey(keyPem);
  // The key must be the certificate's: a mismatch would fail every TLS handshake later, obscurely.
  if (!Buffer.from(onlineDer).includes(Buffer.from(spkiOf(createPublicKey(onlineKey)))))
    throw new Error(`${srvKey} does not match ${srvCrt}`);
  return {
    certPem: pem("CERTIFICATE", onlineDer) + pem("CERTIFICATE", caDer),
    keyPem,
    chainDer: [onlineDer, caDer],
    fingerprint: new Uint8Array(createHash("sha256").update(caDer).digest()),
    onlineKey,
    created,
  };
}

/**
 * `smp://<base64url CA fingerprint>@host[,host…]:port` (SMP spec, "SMP server URI";
 * docs/protocol/smp.md, "Addresses"): `hosts` is `--smp-address-host`, one name or several
 * separated by commas (a public name and an onion address); IPv6 hosts are bracketed.
 */
export function smpAddress(fingerprint: Uint8Array, hosts: string, port: number): string {
  const list = hosts
    .split(",")
    .map((h) => h.trim().replace(/^\[(.*)\]$/, "$1"))
    .filter((h) => h.length > 0);
  return formatSmpServerAddress({
    fingerprint,
    host: list[0] ?? "localhost",
    ...(list.length > 1 ? { hosts: list } : {}),
    port,
  });
}
