/*
 * The floor for any EVP caller (bench/crypto.ts builds and runs this when a C compiler and the
 * OpenSSL headers and libcrypto are there): the same per-packet sequence as native/aead.c, on
 * the same buffer layout (8-byte AAD, 16-byte tag, data after it, 128 packets a batch), with no
 * N-API and no JavaScript. `openssl speed -evp` times bulk updates only; this adds what every
 * packet must pay on top: setting its IV, the AAD, finishing and the tag.
 *
 *   evp-floor <cipher> <bytes> <seal|open> <batches>
 *
 * Prints the median ns per packet over the batches.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 128
#define SLOT 2112
/* Where the header starts, as in our batches: a TUN read leaves the plaintext at HEADROOM (64),
 * so a sealed packet starts at 40; a UDP read leaves the wire packet at 64. */
#define SEAL_HEAD 40
#define OPEN_HEAD 64

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 5) return fprintf(stderr, "usage: evp-floor <cipher> <bytes> <seal|open> <batches>\n"), 2;
  const char *name = argv[1];
  int size = atoi(argv[2]);
  int open = strcmp(argv[3], "open") == 0;
  int batches = atoi(argv[4]);
  int head = open ? OPEN_HEAD : SEAL_HEAD;
  EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
  if (cipher == NULL || size < 0 || size > SLOT - OPEN_HEAD - 24 || batches < 1) return fprintf(stderr, "bad arguments\n"), 2;
  unsigned char key[32] = {1}, iv[12] = {2};
  unsigned char *slab = calloc(BATCH, SLOT), *scratch = malloc(SLOT);
  EVP_CIPHER_CTX *enc = EVP_CIPHER_CTX_new(), *dec = EVP_CIPHER_CTX_new();
  EVP_CipherInit_ex2(enc, cipher, key, NULL, 1, NULL);
  EVP_CipherInit_ex2(dec, cipher, key, NULL, 0, NULL);
  double *ns = malloc(sizeof(double) * batches);
  int outl, ok = 0;
  for (int r = 0; r < batches; r++) {
    if (open) { /* fresh valid packets each batch, sealed untimed */
      for (int i = 0; i < BATCH; i++) {
        unsigned char *b = slab + i * SLOT + head;
        memcpy(iv, &i, sizeof i);
        EVP_CipherInit_ex(enc, NULL, NULL, NULL, iv, -1);
        EVP_EncryptUpdate(enc, NULL, &outl, b, 8);
        EVP_EncryptUpdate(enc, b + 24, &outl, b + 24, size);
        EVP_EncryptFinal_ex(enc, b + 24 + size, &outl);
        EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_AEAD_GET_TAG, 16, b + 8);
      }
    }
    double t0 = now_ns();
    for (int i = 0; i < BATCH; i++) {
      unsigned char *b = slab + i * SLOT + head;
      memcpy(iv, &i, sizeof i);
      if (!open) {
        EVP_CipherInit_ex(enc, NULL, NULL, NULL, iv, -1);
        EVP_EncryptUpdate(enc, NULL, &outl, b, 8);
        EVP_EncryptUpdate(enc, b + 24, &outl, b + 24, size);
        EVP_EncryptFinal_ex(enc, b + 24 + size, &outl);
        EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_AEAD_GET_TAG, 16, b + 8);
        ok++;
      } else {
        EVP_CipherInit_ex(dec, NULL, NULL, NULL, iv, -1);
        EVP_DecryptUpdate(dec, NULL, &outl, b, 8);
        EVP_DecryptUpdate(dec, scratch, &outl, b + 24, size);
        EVP_CIPHER_CTX_ctrl(dec, EVP_CTRL_AEAD_SET_TAG, 16, b + 8);
        if (EVP_DecryptFinal_ex(dec, scratch + size, &outl) == 1) {
          memcpy(b + 24, scratch, size);
          ok++;
        }
      }
    }
    ns[r] = (now_ns() - t0) / BATCH;
  }
  if (ok != batches * BATCH) return fprintf(stderr, "%d of %d packets failed\n", batches * BATCH - ok, batches * BATCH), 1;
  qsort(ns, batches, sizeof(double), cmp);
  printf("%.1f\n", ns[batches / 2]);
  return 0;
}
