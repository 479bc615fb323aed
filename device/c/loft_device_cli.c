/*
 * Test driver for the C reference (device/c.test.ts): reads one command per line on stdin, writes
 * one answer per line on stdout. Arguments and answers are lowercase hex ("-" for empty bytes).
 *
 *   crc HEX                      -> 8 hex digits
 *   cobs HEX                     -> encoded hex
 *   uncobs HEX                   -> decoded hex, or "err"
 *   frame TYPE SEQ HEX           -> wire hex (delimiter included)
 *   deframe MAXPAYLOAD HEX       -> events separated by spaces: "f:TYPE:SEQ:PAYLOAD" or a fault name; "-" if none
 *   blake2s HEX                  -> 64 hex digits
 *   commit H ND                  -> 64 hex digits
 *   code H NO ND OWNERHELLO DEVICEHELLO -> "DIGEST CODE"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loft_device.h"

#define MAX_BYTES 70000

static uint8_t a[MAX_BYTES], b[MAX_BYTES * 2], c[MAX_BYTES], d[MAX_BYTES], e[MAX_BYTES];

static size_t unhex(const char *s, uint8_t *out) {
  if (!s || strcmp(s, "-") == 0) return 0;
  size_t n = strlen(s) / 2;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(s + 2 * i, "%2x", &v);
    out[i] = (uint8_t)v;
  }
  return n;
}

static void puthex(const uint8_t *x, size_t n) {
  if (n == 0) fputs("-", stdout);
  for (size_t i = 0; i < n; i++) printf("%02x", x[i]);
}

static const char *FAULTS[] = {"none", "frame", "cobs", "short", "crc", "unknown-type", "oversized"};

int main(void) {
  static char line[MAX_BYTES * 6];
  static loft_deframer df;
  while (fgets(line, sizeof line, stdin)) {
    char *cmd = strtok(line, " \n");
    if (!cmd) continue;
    if (strcmp(cmd, "crc") == 0) {
      size_t n = unhex(strtok(NULL, " \n"), a);
      printf("%08x", loft_crc32(a, n));
    } else if (strcmp(cmd, "cobs") == 0) {
      size_t n = unhex(strtok(NULL, " \n"), a);
      puthex(b, loft_cobs_encode(a, n, b));
    } else if (strcmp(cmd, "uncobs") == 0) {
      size_t n = unhex(strtok(NULL, " \n"), a);
      long m = loft_cobs_decode(a, n, b);
      if (m < 0) fputs("err", stdout);
      else puthex(b, (size_t)m);
    } else if (strcmp(cmd, "frame") == 0) {
      int type = atoi(strtok(NULL, " \n"));
      int seq = atoi(strtok(NULL, " \n"));
      size_t n = unhex(strtok(NULL, " \n"), a);
      puthex(b, loft_frame_encode((uint8_t)type, (uint16_t)seq, a, n, b));
    } else if (strcmp(cmd, "deframe") == 0) {
      int maxp = atoi(strtok(NULL, " \n"));
      size_t n = unhex(strtok(NULL, " \n"), a);
      loft_deframer_init(&df, (size_t)maxp);
      int any = 0;
      for (size_t i = 0; i < n; i++) {
        enum loft_deframe_result r = loft_deframer_push(&df, a[i]);
        if (r == LOFT_DEFRAME_NONE) continue;
        if (any) fputs(" ", stdout);
        any = 1;
        if (r == LOFT_DEFRAME_FRAME) {
          printf("f:%d:%d:", df.type, df.seq);
          puthex(df.payload, df.payload_len);
        } else {
          fputs(FAULTS[r], stdout);
        }
      }
      if (!any) fputs("-", stdout);
    } else if (strcmp(cmd, "blake2s") == 0) {
      size_t n = unhex(strtok(NULL, " \n"), a);
      loft_blake2s s;
      loft_blake2s_init(&s);
      loft_blake2s_update(&s, a, n);
      loft_blake2s_final(&s, b);
      puthex(b, 32);
    } else if (strcmp(cmd, "commit") == 0) {
      unhex(strtok(NULL, " \n"), a);
      unhex(strtok(NULL, " \n"), c);
      loft_pairing_commit(a, c, b);
      puthex(b, 32);
    } else if (strcmp(cmd, "code") == 0) {
      char code[7];
      unhex(strtok(NULL, " \n"), a);
      unhex(strtok(NULL, " \n"), c);
      unhex(strtok(NULL, " \n"), d);
      size_t on = unhex(strtok(NULL, " \n"), e);
      static uint8_t dh[MAX_BYTES];
      size_t dn = unhex(strtok(NULL, " \n"), dh);
      loft_pairing_code(a, c, d, e, on, dh, dn, b, code);
      puthex(b, 32);
      printf(" %s", code);
    } else {
      fputs("unknown", stdout);
    }
    fputs("\n", stdout);
    fflush(stdout);
  }
  return 0;
}
