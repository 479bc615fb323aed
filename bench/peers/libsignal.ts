/**
 * The named Double Ratchet baseline of bench:core: @signalapp/libsignal-client (the pinned
 * devDependency; Signal's Rust protocol library behind its Node binding, the prebuilt native
 * module the package ships), driven through its public API exactly as a Signal client does:
 * in-memory stores, Bob's prekey bundle (one-time EC prekey, signed prekey, Kyber prekey, each
 * signed by his identity key), `processPreKeyBundle` on Alice's side, then `signalEncrypt` /
 * `signalDecrypt` (`signalDecryptPreKey` while Alice's messages still carry the prekey header).
 *
 * The stores keep `SessionRecord` objects as they are, without serialising them: the least a
 * libsignal client can spend per message, so the baseline is not slowed by our store.
 */
import {
  CiphertextMessageType,
  type Direction,
  IdentityChange,
  IdentityKeyStore,
  KEMKeyPair,
  KyberPreKeyRecord,
  KyberPreKeyStore,
  PreKeyBundle,
  PreKeyRecord,
  PreKeySignalMessage,
  PreKeyStore,
  PrivateKey,
  ProtocolAddress,
  type PublicKey,
  processPreKeyBundle,
  type SessionRecord,
  SessionStore,
  SignalMessage,
  SignedPreKeyRecord,
  SignedPreKeyStore,
  signalDecrypt,
  signalDecryptPreKey,
  signalEncrypt,
} from "@signalapp/libsignal-client";
import type { Subject } from "../harness.ts";

const key = (a: ProtocolAddress) => `${a.name()}.${a.deviceId()}`;

class MemorySessions extends SessionStore {
  readonly #records = new Map<string, SessionRecord>();
  async saveSession(name: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.#records.set(key(name), record);
  }
  async getSession(name: ProtocolAddress): Promise<SessionRecord | null> {
    return this.#records.get(key(name)) ?? null;
  }
  async getExistingSessions(addresses: ProtocolAddress[]): Promise<SessionRecord[]> {
    return addresses.map((a) => {
      const r = this.#records.get(key(a));
      if (!r) throw new Error(`no session with ${key(a)}`);
      return r;
    });
  }
}

/** Trust on first use, as a client without a verified safety number does. */
class MemoryIdentities extends IdentityKeyStore {
  readonly #known = new Map<string, PublicKey>();
  constructor(
    readonly identity: PrivateKey,
    readonly registrationId: number,
  ) {
    super();
  }
  async getIdentityKey(): Promise<PrivateKey> {
    return this.identity;
  }
  async getLocalRegistrationId(): Promise<number> {
    return this.registrationId;
  }
  async saveIdentity(name: ProtocolAddress, k: PublicKey): Promise<IdentityChange> {
    const before = this.#known.get(key(name));
    this.#known.set(key(name), k);
    return before && !before.equals(k) ? IdentityChange.ReplacedExisting : IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity(name: ProtocolAddress, k: PublicKey, _direction: Direction): Promise<boolean> {
    const known = this.#known.get(key(name));
    return !known || known.equals(k);
  }
  async getIdentity(name: ProtocolAddress): Promise<PublicKey | null> {
    return this.#known.get(key(name)) ?? null;
  }
}

class MemoryPreKeys extends PreKeyStore {
  readonly #records = new Map<number, PreKeyRecord>();
  async savePreKey(id: number, record: PreKeyRecord): Promise<void> {
    this.#records.set(id, record);
  }
  async getPreKey(id: number): Promise<PreKeyRecord> {
    const r = this.#records.get(id);
    if (!r) throw new Error(`no prekey ${id}`);
    return r;
  }
  async removePreKey(id: number): Promise<void> {
    this.#records.delete(id);
  }
}

class MemorySignedPreKeys extends SignedPreKeyStore {
  readonly #records = new Map<number, SignedPreKeyRecord>();
  async saveSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void> {
    this.#records.set(id, record);
  }
  async getSignedPreKey(id: number): Promise<SignedPreKeyRecord> {
    const r = this.#records.get(id);
    if (!r) throw new Error(`no signed prekey ${id}`);
    return r;
  }
}

class MemoryKyberPreKeys extends KyberPreKeyStore {
  readonly #records = new Map<number, KyberPreKeyRecord>();
  async saveKyberPreKey(id: number, record: KyberPreKeyRecord): Promise<void> {
    this.#records.set(id, record);
  }
  async getKyberPreKey(id: number): Promise<KyberPreKeyRecord> {
    const r = this.#records.get(id);
    if (!r) throw new Error(`no kyber prekey ${id}`);
    return r;
  }
  async markKyberPreKeyUsed(): Promise<void> {}
}

interface Party {
  address: ProtocolAddress;
  sessions: MemorySessions;
  identities: MemoryIdentities;
  preKeys: MemoryPreKeys;
  signedPreKeys: MemorySignedPreKeys;
  kyberPreKeys: MemoryKyberPreKeys;
}

function party(name: string, registrationId: number): Party {
  return {
    address: ProtocolAddress.new(name, 1),
    sessions: new MemorySessions(),
    identities: new MemoryIdentities(PrivateKey.generate(), registrationId),
    preKeys: new MemoryPreKeys(),
    signedPreKeys: new MemorySignedPreKeys(),
    kyberPreKeys: new MemoryKyberPreKeys(),
  };
}

/** Bob publishes a bundle (keeping the private halves in his stores); Alice starts a session from it. */
async function startSession(alice: Party, bob: Party): Promise<void> {
  const identity = bob.identities.identity;
  const preKey = PrivateKey.generate();
  const signedPreKey = PrivateKey.generate();
  const signedSignature = identity.sign(signedPreKey.getPublicKey().serialize());
  const kyber = KEMKeyPair.generate();
  const kyberSignature = identity.sign(kyber.getPublicKey().serialize());
  const now = Date.now();
  await bob.preKeys.savePreKey(1, PreKeyRecord.new(1, preKey.getPublicKey(), preKey));
  await bob.signedPreKeys.saveSignedPreKey(
    2,
    SignedPreKeyRecord.new(2, now, signedPreKey.getPublicKey(), signedPreKey, signedSignature),
  );
  await bob.kyberPreKeys.saveKyberPreKey(3, KyberPreKeyRecord.new(3, now, kyber, kyberSignature));
  const bundle = PreKeyBundle.new(
    bob.identities.registrationId,
    bob.address.deviceId(),
    1,
    preKey.getPublicKey(),
    2,
    signedPreKey.getPublicKey(),
    signedSignature,
    identity.getPublicKey(),
    3,
    kyber.getPublicKey(),
    kyberSignature,
  );
  await processPreKeyBundle(bundle, bob.address, alice.address, alice.sessions, alice.identities);
}

async function encrypt(from: Party, to: Party, plaintext: Uint8Array<ArrayBuffer>) {
  return signalEncrypt(plaintext, to.address, from.address, from.sessions, from.identities);
}

async function decrypt(
  at: Party,
  from: Party,
  message: Awaited<ReturnType<typeof encrypt>>,
): Promise<Uint8Array> {
  const bytes = message.serialize();
  if (message.type() === CiphertextMessageType.PreKey)
    return signalDecryptPreKey(
      PreKeySignalMessage.deserialize(bytes),
      from.address,
      at.address,
      at.sessions,
      at.identities,
      at.preKeys,
      at.signedPreKeys,
      at.kyberPreKeys,
    );
  return signalDecrypt(
    SignalMessage.deserialize(bytes),
    from.address,
    at.address,
    at.sessions,
    at.identities,
  );
}

/**
 * Operations are messages of `messageBytes`, each encrypted by one side and decrypted by the
 * other; the direction flips every `replyEvery` messages (a DH ratchet step each time), as Loft's.
 */
export async function libsignalRatchet(messageBytes: number, replyEvery: number): Promise<Subject> {
  const alice = party("alice", 1);
  const bob = party("bob", 2);
  await startSession(alice, bob);
  const plaintext = crypto.getRandomValues(new Uint8Array(messageBytes));
  const expected = Buffer.from(plaintext);
  // The first round trip (Alice's PreKey message, Bob's reply) happens before the timed loop,
  // as it does once per contact; the loop then runs the steady state, as Loft's does.
  await decrypt(bob, alice, await encrypt(alice, bob, plaintext));
  await decrypt(alice, bob, await encrypt(bob, alice, plaintext));
  // One call is one whole cycle (Alice → Bob × replyEvery, then Bob → Alice × replyEvery), as Loft's.
  const oneWay = async (from: Party, to: Party) => {
    for (let i = 0; i < replyEvery; i++) {
      const opened = await decrypt(to, from, await encrypt(from, to, plaintext));
      if (!expected.equals(opened)) throw new Error("libsignal returned the wrong plaintext");
    }
  };
  return {
    name: "libsignal-client signalEncrypt+signalDecrypt",
    run: async () => {
      await oneWay(alice, bob);
      await oneWay(bob, alice);
      return 2 * replyEvery;
    },
  };
}
