/**
 * Settings' "Cryptography on this device" table: for each primitive Loft uses, whether this
 * browser runs it natively (WebCrypto) or Loft's JavaScript implementation (noble) does — the
 * browser side of what the server's detailed /health shows (docs/operations.md).
 */
import { createResource, For, Show } from "solid-js";
import { PRIMITIVES, type Primitive } from "../../../core/crypto/provider.ts";
import { pageCryptoBackends } from "../crypto.ts";

const NAMES: Record<Primitive, string> = {
  random: "Random numbers",
  x25519: "X25519 key agreement",
  ed25519: "Ed25519 signatures",
  chacha20poly1305: "ChaCha20-Poly1305",
  xchacha20poly1305: "XChaCha20-Poly1305",
  aes256gcm: "AES-256-GCM",
  sha256: "SHA-256",
  sha512: "SHA-512",
  blake2s: "BLAKE2s",
  hmacSha256: "HMAC-SHA-256",
  hmacBlake2s: "HMAC-BLAKE2s",
  hkdfSha256: "HKDF-SHA-256",
  mlkem768: "ML-KEM-768 (post-quantum)",
};

const RUNS_ON: Record<string, string> = { webcrypto: "browser (native)", noble: "JavaScript" };

export function CryptoBackends() {
  const [backends] = createResource(pageCryptoBackends);
  return (
    <section class="card" data-testid="crypto-backends-section">
      <h2>Cryptography on this device</h2>
      <Show when={backends()} fallback={<p class="help">Checking what this browser provides…</p>}>
        {(b) => (
          <table data-testid="crypto-backends">
            <tbody>
              <For each={[...PRIMITIVES]}>
                {(p) => (
                  <tr data-primitive={p} data-backend={b()[p]}>
                    <td>{NAMES[p]}</td>
                    <td>{RUNS_ON[b()[p]] ?? b()[p]}</td>
                  </tr>
                )}
              </For>
            </tbody>
          </table>
        )}
      </Show>
      <p class="help">
        Native primitives are faster. The same checks and the same results either way: each native one was
        tested against Loft's own when this page loaded.
      </p>
    </section>
  );
}
