/* Loft device protocol, portable C reference. See loft_device.h and docs/device.md. */
#include "loft_device.h"

#include <string.h>

/* ---- CRC-32 (IEEE: reflected 0xEDB88320, init and final XOR 0xFFFFFFFF), bitwise: no table ---- */
uint32_t loft_crc32(const uint8_t *data, size_t len) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; i++) {
    c ^= data[i];
    for (int k = 0; k < 8; k++) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
  }
  return c ^ 0xFFFFFFFFu;
}

/* ---- COBS ---- */
size_t loft_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
  size_t code_at = 0, o = 1;
  uint8_t code = 1;
  for (size_t i = 0; i < len; i++) {
    if (in[i] == 0) {
      out[code_at] = code;
      code_at = o++;
      code = 1;
      continue;
    }
    out[o++] = in[i];
    code++;
    if (code == 0xFF) {
      out[code_at] = code;
      if (i == len - 1) return o; /* a full block that ends the input needs no empty block */
      code_at = o++;
      code = 1;
    }
  }
  out[code_at] = code;
  return o;
}

long loft_cobs_decode(const uint8_t *in, size_t len, uint8_t *out) {
  size_t i = 0, o = 0;
  while (i < len) {
    uint8_t code = in[i];
    if (code == 0) return -1;
    size_t end = i + code;
    if (end > len) return -1;
    for (size_t k = i + 1; k < end; k++) {
      if (in[k] == 0) return -1;
      out[o++] = in[k];
    }
    i = end;
    if (code != 0xFF && i < len) out[o++] = 0;
  }
  return (long)o;
}

/* ---- frames ---- */
static int known_type(uint8_t t) { return t >= LOFT_FRAME_HELLO && t <= LOFT_FRAME_CLOSE; }

size_t loft_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out) {
  uint8_t body[LOFT_FRAME_HEADER + LOFT_MAX_FRAME_PAYLOAD + LOFT_FRAME_CRC];
  if (!known_type(type) || len > LOFT_MAX_FRAME_PAYLOAD) return 0;
  body[0] = type;
  body[1] = (uint8_t)(seq >> 8);
  body[2] = (uint8_t)seq;
  if (len) memcpy(body + LOFT_FRAME_HEADER, payload, len);
  size_t n = LOFT_FRAME_HEADER + len;
  uint32_t crc = loft_crc32(body, n);
  body[n] = (uint8_t)(crc >> 24);
  body[n + 1] = (uint8_t)(crc >> 16);
  body[n + 2] = (uint8_t)(crc >> 8);
  body[n + 3] = (uint8_t)crc;
  size_t w = loft_cobs_encode(body, n + LOFT_FRAME_CRC, out);
  out[w] = 0;
  return w + 1;
}

void loft_deframer_init(loft_deframer *d, size_t max_payload) {
  memset(d, 0, sizeof *d);
  d->max_payload = max_payload > LOFT_MAX_FRAME_PAYLOAD ? LOFT_MAX_FRAME_PAYLOAD : max_payload;
  d->skipped = -1;
}

static enum loft_deframe_result decode_block(loft_deframer *d) {
  size_t cap = LOFT_COBS_MAX(LOFT_FRAME_HEADER + d->max_payload + LOFT_FRAME_CRC);
  if (d->filled > cap) return LOFT_DEFRAME_OVERSIZED;
  long n = loft_cobs_decode(d->buf, d->filled, d->body);
  if (n < 0) return LOFT_DEFRAME_COBS;
  if ((size_t)n < LOFT_FRAME_HEADER + LOFT_FRAME_CRC) return LOFT_DEFRAME_SHORT;
  size_t m = (size_t)n - LOFT_FRAME_CRC;
  uint32_t want = ((uint32_t)d->body[m] << 24) | ((uint32_t)d->body[m + 1] << 16) | ((uint32_t)d->body[m + 2] << 8) |
                  (uint32_t)d->body[m + 3];
  if (loft_crc32(d->body, m) != want) return LOFT_DEFRAME_CRC;
  if (m - LOFT_FRAME_HEADER > d->max_payload) return LOFT_DEFRAME_OVERSIZED;
  if (!known_type(d->body[0])) return LOFT_DEFRAME_UNKNOWN_TYPE;
  d->type = d->body[0];
  d->seq = (uint16_t)((d->body[1] << 8) | d->body[2]);
  d->payload = d->body + LOFT_FRAME_HEADER;
  d->payload_len = m - LOFT_FRAME_HEADER;
  return LOFT_DEFRAME_FRAME;
}

enum loft_deframe_result loft_deframer_push(loft_deframer *d, uint8_t byte) {
  size_t cap = LOFT_COBS_MAX(LOFT_FRAME_HEADER + d->max_payload + LOFT_FRAME_CRC);
  if (byte == 0) {
    enum loft_deframe_result r = LOFT_DEFRAME_NONE;
    if (d->skipped >= 0) {
      r = LOFT_DEFRAME_OVERSIZED;
      d->skipped = -1;
    } else if (d->filled > 0) {
      r = decode_block(d);
    }
    d->filled = 0;
    return r;
  }
  if (d->skipped >= 0) {
    d->skipped++;
    return LOFT_DEFRAME_NONE;
  }
  if (d->filled == cap) {
    d->skipped = (long)d->filled + 1;
    d->filled = 0;
    return LOFT_DEFRAME_NONE;
  }
  d->buf[d->filled++] = byte;
  return LOFT_DEFRAME_NONE;
}

/* ---- BLAKE2s-256 (RFC 7693) ---- */
static const uint32_t B2S_IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                   0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};
static const uint8_t B2S_SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0}};

#define ROTR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define B2S_G(a, b, c, d, x, y)  \
  do {                           \
    v[a] = v[a] + v[b] + (x);    \
    v[d] = ROTR32(v[d] ^ v[a], 16); \
    v[c] = v[c] + v[d];          \
    v[b] = ROTR32(v[b] ^ v[c], 12); \
    v[a] = v[a] + v[b] + (y);    \
    v[d] = ROTR32(v[d] ^ v[a], 8); \
    v[c] = v[c] + v[d];          \
    v[b] = ROTR32(v[b] ^ v[c], 7); \
  } while (0)

static void b2s_compress(loft_blake2s *s, int last) {
  uint32_t v[16], m[16];
  for (int i = 0; i < 8; i++) {
    v[i] = s->h[i];
    v[i + 8] = B2S_IV[i];
  }
  v[12] ^= s->t[0];
  v[13] ^= s->t[1];
  if (last) v[14] = ~v[14];
  for (int i = 0; i < 16; i++)
    m[i] = (uint32_t)s->b[4 * i] | ((uint32_t)s->b[4 * i + 1] << 8) | ((uint32_t)s->b[4 * i + 2] << 16) |
           ((uint32_t)s->b[4 * i + 3] << 24);
  for (int r = 0; r < 10; r++) {
    const uint8_t *p = B2S_SIGMA[r];
    B2S_G(0, 4, 8, 12, m[p[0]], m[p[1]]);
    B2S_G(1, 5, 9, 13, m[p[2]], m[p[3]]);
    B2S_G(2, 6, 10, 14, m[p[4]], m[p[5]]);
    B2S_G(3, 7, 11, 15, m[p[6]], m[p[7]]);
    B2S_G(0, 5, 10, 15, m[p[8]], m[p[9]]);
    B2S_G(1, 6, 11, 12, m[p[10]], m[p[11]]);
    B2S_G(2, 7, 8, 13, m[p[12]], m[p[13]]);
    B2S_G(3, 4, 9, 14, m[p[14]], m[p[15]]);
  }
  for (int i = 0; i < 8; i++) s->h[i] ^= v[i] ^ v[i + 8];
}

void loft_blake2s_init(loft_blake2s *s) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < 8; i++) s->h[i] = B2S_IV[i];
  s->h[0] ^= 0x01010000u ^ 32u; /* depth 1, fanout 1, no key, 32-byte digest */
}

void loft_blake2s_update(loft_blake2s *s, const uint8_t *in, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (s->c == 64) {
      s->t[0] += 64;
      if (s->t[0] < 64) s->t[1]++;
      b2s_compress(s, 0);
      s->c = 0;
    }
    s->b[s->c++] = in[i];
  }
}

void loft_blake2s_final(loft_blake2s *s, uint8_t out[32]) {
  s->t[0] += (uint32_t)s->c;
  if (s->t[0] < s->c) s->t[1]++;
  while (s->c < 64) s->b[s->c++] = 0;
  b2s_compress(s, 1);
  for (int i = 0; i < 32; i++) out[i] = (uint8_t)(s->h[i >> 2] >> (8 * (i & 3)));
  memset(s, 0, sizeof *s);
}

/* ---- pairing ---- */
static void b2s_lp(loft_blake2s *s, const uint8_t *x, size_t len) {
  uint8_t l[2] = {(uint8_t)(len >> 8), (uint8_t)len};
  loft_blake2s_update(s, l, 2);
  loft_blake2s_update(s, x, len);
}

static const char COMMIT_LABEL[] = "loft/device/pairing-commit/v1";
static const char CODE_LABEL[] = "loft/device/pairing-code/v1";

void loft_pairing_commit(const uint8_t h[32], const uint8_t device_nonce[32], uint8_t out[32]) {
  loft_blake2s s;
  loft_blake2s_init(&s);
  b2s_lp(&s, (const uint8_t *)COMMIT_LABEL, sizeof COMMIT_LABEL - 1);
  loft_blake2s_update(&s, h, 32);
  loft_blake2s_update(&s, device_nonce, 32);
  loft_blake2s_final(&s, out);
}

void loft_pairing_code(const uint8_t h[32], const uint8_t owner_nonce[32], const uint8_t device_nonce[32],
                       const uint8_t *owner_hello, size_t owner_hello_len, const uint8_t *device_hello,
                       size_t device_hello_len, uint8_t digest[32], char code[7]) {
  loft_blake2s s;
  uint8_t t[32];
  loft_blake2s_init(&s);
  b2s_lp(&s, (const uint8_t *)CODE_LABEL, sizeof CODE_LABEL - 1);
  loft_blake2s_update(&s, h, 32);
  loft_blake2s_update(&s, owner_nonce, 32);
  loft_blake2s_update(&s, device_nonce, 32);
  b2s_lp(&s, owner_hello, owner_hello_len);
  b2s_lp(&s, device_hello, device_hello_len);
  loft_blake2s_final(&s, t);
  uint64_t x = 0;
  for (int i = 0; i < 8; i++) x = (x << 8) | t[i];
  uint32_t c = (uint32_t)(x % 1000000u);
  for (int i = 5; i >= 0; i--) {
    code[i] = (char)('0' + c % 10);
    c /= 10;
  }
  code[6] = '\0';
  if (digest) memcpy(digest, t, 32);
  memset(t, 0, sizeof t);
}
