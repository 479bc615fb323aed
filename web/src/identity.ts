/**
 * The PWA's single door to core/identity (SREMP §3.1 identity, DESIGN.md Cryptography).
 *
 * Until core/identity lands, this module declares the shapes the UI, storage and the engine
 * contract are written against; once it lands these become re-exports, so nothing else changes.
 */

/** SREMP `Flags`. */
export interface IdentityFlags {
  uses_relay: boolean;
  is_machine_account: boolean;
  is_relay_server: boolean;
  prefers_async: boolean;
}

/** SREMP `IdentityVerifiedData`: every field is covered by the signature. */
export interface IdentityVerifiedData {
  username: string;
  identity_key: Uint8Array;
  noise_key: Uint8Array;
  flags: IdentityFlags;
  version: bigint | number;
  created: number;
}

/** SREMP `Identity`: verified data plus the Ed25519 signature over its canonical MessagePack. */
export interface Identity {
  verified: IdentityVerifiedData;
  signature: Uint8Array;
}

/** SREMP `UserIdentity`: never leaves this device except inside an encrypted backup. */
export interface UserIdentity {
  identity: Identity;
  privateIdentityKey: Uint8Array;
  privateNoiseKey: Uint8Array;
}

/** SREMP `Trust`. */
export type Trust = "unknown" | "trusted" | "rejected";
