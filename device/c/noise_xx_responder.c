/*
 * A Noise_XX_25519_ChaChaPoly_BLAKE2s responder in C, as a firmware would run it (docs/device.md
 * §10): libsodium for X25519 and ChaCha20-Poly1305 (IETF), loft_device.c for BLAKE2s. Noise
 * Protocol Framework rev 34, §5 (processing rules) and §7.5 (XX). device/c-noise.test.ts runs it
 * against the TypeScript initiator (core/noise).
 *
 *   noise_xx_responder STATIC_PRIV EPHEMERAL_PRIV PROLOGUE PAYLOAD   (hex; "-" for empty)
 *   stdin  line 1: message 1            stdout line 1: message 2 (carrying PAYLOAD)
 *   stdin  line 2: message 3            stdout line 2: "H REMOTE_STATIC PAYLOAD3"
 *   stdin  line 3: a transport message  stdout line 3: its plaintext
 *   stdin  line 4: plaintext            stdout line 4: the transport message we send
 * Any failure prints "err" and exits 1.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loft_device.h"

#define MAXMSG 65535

typedef struct {
  uint8_t k[32];
  int has_k;
  uint64_t n;
} cipher_state;

static uint8_t ck[32], h[32];
static cipher_state cs;

static void hash2(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, uint8_t out[32]) {
  loft_blake2s s;
  loft_blake2s_init(&s);
  loft_blake2s_update(&s, a, al);
  loft_blake2s_update(&s, b, bl);
  loft_blake2s_final(&s, out);
}

static void hmac(const uint8_t key[32], const uint8_t *d1, size_t l1, const uint8_t *d2, size_t l2, uint8_t out[32]) {
  uint8_t pad[64], inner[32];
  loft_blake2s s;
  memset(pad, 0x36, 64);
  for (int i = 0; i < 32; i++) pad[i] ^= key[i];
  loft_blake2s_init(&s);
  loft_blake2s_update(&s, pad, 64);
  loft_blake2s_update(&s, d1, l1);
  loft_blake2s_update(&s, d2, l2);
  loft_blake2s_final(&s, inner);
  memset(pad, 0x5c, 64);
  for (int i = 0; i < 32; i++) pad[i] ^= key[i];
  hash2(pad, 64, inner, 32, out);
}

/* Noise §4.3 HKDF with two outputs. */
static void hkdf2(const uint8_t chaining[32], const uint8_t *ikm, size_t ikm_len, uint8_t o1[32], uint8_t o2[32]) {
  uint8_t temp[32], one = 1, two[33];
  hmac(chaining, ikm, ikm_len, NULL, 0, temp);
  hmac(temp, &one, 1, NULL, 0, o1);
  memcpy(two, o1, 32);
  two[32] = 2;
  hmac(temp, two, 33, NULL, 0, o2);
  sodium_memzero(temp, 32);
}

static void mix_hash(const uint8_t *d, size_t l) { hash2(h, 32, d, l, h); }

static void mix_key(const uint8_t *ikm, size_t l) {
  uint8_t k[32];
  hkdf2(ck, ikm, l, ck, k);
  memcpy(cs.k, k, 32);
  cs.has_k = 1;
  cs.n = 0;
  sodium_memzero(k, 32);
}

static void nonce(uint64_t n, uint8_t out[12]) {
  memset(out, 0, 4);
  for (int i = 0; i < 8; i++) out[4 + i] = (uint8_t)(n >> (8 * i));
}

static int encrypt_with(cipher_state *c, const uint8_t *ad, size_t adl, const uint8_t *p, size_t pl, uint8_t *out, size_t *ol) {
  if (!c->has_k) {
    memcpy(out, p, pl);
    *ol = pl;
    return 0;
  }
  uint8_t npub[12];
  unsigned long long clen;
  nonce(c->n++, npub);
  crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, p, pl, ad, adl, NULL, npub, c->k);
  *ol = (size_t)clen;
  return 0;
}

static int decrypt_with(cipher_state *c, const uint8_t *ad, size_t adl, const uint8_t *ct, size_t cl, uint8_t *out, size_t *ol) {
  if (!c->has_k) {
    memcpy(out, ct, cl);
    *ol = cl;
    return 0;
  }
  uint8_t npub[12];
  unsigned long long mlen;
  nonce(c->n, npub);
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, cl, ad, adl, npub, c->k) != 0) return -1;
  c->n++;
  *ol = (size_t)mlen;
  return 0;
}

static void encrypt_and_hash(const uint8_t *p, size_t pl, uint8_t *out, size_t *ol) {
  encrypt_with(&cs, h, 32, p, pl, out, ol);
  mix_hash(out, *ol);
}

static int decrypt_and_hash(const uint8_t *ct, size_t cl, uint8_t *out, size_t *ol) {
  uint8_t hh[32];
  memcpy(hh, h, 32);
  if (decrypt_with(&cs, hh, 32, ct, cl, out, ol) != 0) return -1;
  mix_hash(ct, cl);
  return 0;
}

static size_t unhex(const char *s, uint8_t *out) {
  if (!s || s[0] == '-' || s[0] == '\0' || s[0] == '\n') return 0;
  size_t n = strcspn(s, "\r\n") / 2;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return 0;
    out[i] = (uint8_t)v;
  }
  return n;
}

static void puthex(const uint8_t *x, size_t n) {
  if (n == 0) fputs("-", stdout);
  for (size_t i = 0; i < n; i++) printf("%02x", x[i]);
}

static int fail(void) {
  puts("err");
  return 1;
}

static char line[2 * MAXMSG + 8];
static uint8_t in[MAXMSG], out[MAXMSG], tmp[MAXMSG];

int main(int argc, char **argv) {
  if (argc != 5 || sodium_init() < 0) return fail();
  uint8_t s_priv[32], s_pub[32], e_priv[32], e_pub[32], re[32], rs[32], dh[32], prologue[256], payload[4096];
  unhex(argv[1], s_priv);
  unhex(argv[2], e_priv);
  size_t prologue_len = unhex(argv[3], prologue);
  size_t payload_len = unhex(argv[4], payload);
  crypto_scalarmult_curve25519_base(s_pub, s_priv);
  crypto_scalarmult_curve25519_base(e_pub, e_priv);

  /* Initialize: the name is longer than 32 bytes, so h = HASH(name); ck = h (§5.2). */
  static const char NAME[] = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
  hash2((const uint8_t *)NAME, sizeof NAME - 1, NULL, 0, h);
  memcpy(ck, h, 32);
  mix_hash(prologue, prologue_len);

  /* <- e (message 1, payload in clear) */
  if (!fgets(line, sizeof line, stdin)) return fail();
  size_t n = unhex(line, in), ol;
  if (n < 32) return fail();
  memcpy(re, in, 32);
  mix_hash(re, 32);
  if (decrypt_and_hash(in + 32, n - 32, tmp, &ol) != 0) return fail();

  /* -> e, ee, s, es (message 2) */
  size_t o = 0;
  memcpy(out, e_pub, 32);
  o += 32;
  mix_hash(e_pub, 32);
  if (crypto_scalarmult_curve25519(dh, e_priv, re) != 0) return fail();
  mix_key(dh, 32);
  encrypt_and_hash(s_pub, 32, out + o, &ol);
  o += ol;
  if (crypto_scalarmult_curve25519(dh, s_priv, re) != 0) return fail();
  mix_key(dh, 32);
  encrypt_and_hash(payload, payload_len, out + o, &ol);
  o += ol;
  puthex(out, o);
  puts("");
  fflush(stdout);

  /* <- s, se (message 3) */
  if (!fgets(line, sizeof line, stdin)) return fail();
  n = unhex(line, in);
  if (n < 48) return fail();
  if (decrypt_and_hash(in, 48, rs, &ol) != 0 || ol != 32) return fail();
  if (crypto_scalarmult_curve25519(dh, e_priv, rs) != 0) return fail();
  mix_key(dh, 32);
  if (decrypt_and_hash(in + 48, n - 48, tmp, &ol) != 0) return fail();
  puthex(h, 32);
  fputs(" ", stdout);
  puthex(rs, 32);
  fputs(" ", stdout);
  puthex(tmp, ol);
  puts("");
  fflush(stdout);

  /* Split (§5.2): the initiator sends with the first key, we send with the second. */
  cipher_state from_initiator = {{0}, 1, 0}, to_initiator = {{0}, 1, 0};
  hkdf2(ck, NULL, 0, from_initiator.k, to_initiator.k);
  sodium_memzero(ck, 32);
  sodium_memzero(&cs, sizeof cs);
  sodium_memzero(e_priv, 32);
  sodium_memzero(dh, 32);

  if (!fgets(line, sizeof line, stdin)) return fail();
  n = unhex(line, in);
  if (decrypt_with(&from_initiator, NULL, 0, in, n, tmp, &ol) != 0) return fail();
  puthex(tmp, ol);
  puts("");
  fflush(stdout);

  if (!fgets(line, sizeof line, stdin)) return fail();
  n = unhex(line, in);
  encrypt_with(&to_initiator, NULL, 0, in, n, out, &ol);
  puthex(out, ol);
  puts("");
  fflush(stdout);
  sodium_memzero(s_priv, 32);
  return 0;
}
