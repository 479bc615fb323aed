/*
 * Loft device protocol, portable C reference: CRC-32, COBS, serial frames, a streaming
 * deframer, BLAKE2s-256 and the pairing code (docs/device.md §2, §5). C99, no allocation, no
 * libc beyond <stdint.h>/<stddef.h>/<string.h>: the piece an ESP-IDF component includes. The Noise
 * session itself uses libsodium (X25519, ChaCha20-Poly1305) plus this file's BLAKE2s.
 *
 * Byte-identical to the TypeScript in core/device on docs/vectors/device-v1.json (device/c.test.ts).
 */
#ifndef LOFT_DEVICE_H
#define LOFT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#define LOFT_FRAME_HELLO 0x01
#define LOFT_FRAME_DATA 0x02
#define LOFT_FRAME_DATA_END 0x03
#define LOFT_FRAME_ACK 0x04
#define LOFT_FRAME_CLOSE 0x05

#define LOFT_FRAME_HEADER 3
#define LOFT_FRAME_CRC 4
#define LOFT_MAX_FRAME_PAYLOAD 1024
/* COBS bound for n input bytes, without the 0x00 delimiter. */
#define LOFT_COBS_MAX(n) ((n) + (n) / 254 + 1)
/* Largest encoded frame for a payload bound, delimiter included. */
#define LOFT_WIRE_MAX(payload) (LOFT_COBS_MAX(LOFT_FRAME_HEADER + (payload) + LOFT_FRAME_CRC) + 1)

uint32_t loft_crc32(const uint8_t *data, size_t len);

/* Returns the encoded length; `out` holds at least LOFT_COBS_MAX(len) bytes. */
size_t loft_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* Returns the decoded length, or -1 if malformed (0x00 inside, code past the end). */
long loft_cobs_decode(const uint8_t *in, size_t len, uint8_t *out);

/* One frame on the wire (delimiter included); returns its length, 0 on bad arguments. */
size_t loft_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out);

enum loft_deframe_result {
  LOFT_DEFRAME_NONE = 0, /* byte consumed, nothing complete */
  LOFT_DEFRAME_FRAME,    /* a frame: see type / seq / payload / payload_len */
  LOFT_DEFRAME_COBS,     /* faults: the bytes were dropped, the stream goes on */
  LOFT_DEFRAME_SHORT,
  LOFT_DEFRAME_CRC,
  LOFT_DEFRAME_UNKNOWN_TYPE,
  LOFT_DEFRAME_OVERSIZED
};

/* A streaming deframer with its buffers inline: feed it one byte at a time from the UART. */
typedef struct {
  size_t max_payload;
  size_t filled;
  long skipped; /* -1 when not skipping an oversized run */
  uint8_t buf[LOFT_COBS_MAX(LOFT_FRAME_HEADER + LOFT_MAX_FRAME_PAYLOAD + LOFT_FRAME_CRC)];
  uint8_t body[LOFT_FRAME_HEADER + LOFT_MAX_FRAME_PAYLOAD + LOFT_FRAME_CRC];
  uint8_t type;
  uint16_t seq;
  const uint8_t *payload;
  size_t payload_len;
} loft_deframer;

void loft_deframer_init(loft_deframer *d, size_t max_payload);
enum loft_deframe_result loft_deframer_push(loft_deframer *d, uint8_t byte);

/* BLAKE2s-256 (RFC 7693), unkeyed, incremental. */
typedef struct {
  uint32_t h[8];
  uint32_t t[2];
  uint8_t b[64];
  size_t c;
} loft_blake2s;
void loft_blake2s_init(loft_blake2s *s);
void loft_blake2s_update(loft_blake2s *s, const uint8_t *in, size_t len);
void loft_blake2s_final(loft_blake2s *s, uint8_t out[32]);

/* commit = BLAKE2s(lp("loft/device/pairing-commit/v1") || h || device_nonce) */
void loft_pairing_commit(const uint8_t h[32], const uint8_t device_nonce[32], uint8_t out[32]);
/*
 * t = BLAKE2s(lp("loft/device/pairing-code/v1") || h || No || Nd || lp(owner HELLO) || lp(device HELLO));
 * code = u64be(t[0..8]) mod 1000000. Writes 6 digits and a NUL into `code`; `digest` may be NULL.
 */
void loft_pairing_code(const uint8_t h[32], const uint8_t owner_nonce[32], const uint8_t device_nonce[32],
                       const uint8_t *owner_hello, size_t owner_hello_len, const uint8_t *device_hello,
                       size_t device_hello_len, uint8_t digest[32], char code[7]);

#endif
