/*
 * Batched AEAD on the OpenSSL that Node itself ships: the node binary exports
 * OpenSSL's EVP symbols and node-gyp ships their headers, so this links
 * against the very library node:crypto uses (checked at build time by
 * native/check-openssl.cjs, and the addon is linked with -z now so that a
 * node without them fails at load, never at the first packet).
 *
 * A key handle holds two EVP_CIPHER_CTX, one per direction, each initialised
 * once with its key; per packet only the IV is set, as the kernel module keeps
 * one AEAD transform per key. A context with its key schedule costs more than
 * the rest of a peer, so at most `limit` keys (per thread) hold contexts at a
 * time: past that, the key used least recently gives its pair up to the one
 * being used, which re-keys them (a key schedule per run, and only while more
 * keys carry traffic than the limit). Each key keeps its raw bytes for that,
 * wiped when it is deleted. One call seals or opens a whole run of packets
 * described by offsets into JS buffers. The primitive knows nothing of
 * OpenVPN: nonce layout, AAD, packet-ids and replay stay in TypeScript.
 *
 * Open never writes unverified plaintext into the caller's buffer: with GCM
 * and ChaCha20-Poly1305, EVP_DecryptUpdate emits plaintext before
 * EVP_DecryptFinal_ex checks the tag, so each packet is decrypted into a
 * per-thread scratch area and copied into place only once its tag verified.
 * The copy is a memcpy of data already in L1 next to a full AEAD pass over
 * it; in-place decryption followed by a wipe on failure would be cheaper but
 * would expose forged plaintext to anything sharing the memory meanwhile.
 */
#include <node_api.h>

#if !defined(__has_include) || !__has_include(<openssl/evp.h>)
#error "openssl/evp.h not found: this Node build ships no OpenSSL headers (built --without-ssl?); the native AEAD needs a Node with OpenSSL 3"
#endif
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#if !defined(OPENSSL_VERSION_MAJOR) || OPENSSL_VERSION_MAJOR < 3
#error "the native AEAD needs the OpenSSL 3 headers of Node >= 18 (EVP_CIPHER_fetch)"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"

/* Mirrors AEAD_RUN_MAX in src/core/aead.ts: a run is at most one batch. */
#define RUN_MAX 128
#define IV_SIZE 12
#define TAG_SIZE 16
/* Per packet in the descriptor Int32Array. */
#define D_INDEX 0
#define D_AAD_OFF 1
#define D_AAD_LEN 2
#define D_DATA_OFF 3
#define D_DATA_LEN 4
#define D_TAG_OFF 5
#define D_STRIDE 6
/* Result of a packet whose tag did not verify (src/core/aead.ts AEAD_AUTH_FAILED). */
#define AUTH_FAILED (-1)

#define KEY_MAGIC 0x6f41454144u /* "oAEAD": set while the struct is live */

/* Marks our handles, so an external from anywhere else is refused before it is dereferenced. */
static const napi_type_tag KEY_TAG = {0x6f76706e61656164ull, 0x6b657968616e646cull};

#define MAX_KEY 32

/* A live key: what is freed and wiped when it is deleted. */
typedef struct key_state {
  EVP_CIPHER *cipher;             /* a reference held until delete */
  size_t key_len;
  uint8_t key[2][MAX_KEY];        /* [0] encrypt, [1] decrypt: raw bytes, to (re)bind contexts */
  EVP_CIPHER_CTX *ctx[2];         /* bound contexts, or NULL while other keys have them */
  struct key_state *newer, *older; /* the pool's recency list, while bound */
} key_state;

/* What the JS handle points at; it outlives the key until the handle is
 * collected (finalizers run later), so it stays this small. */
typedef struct {
  uint64_t magic;
  key_state *state; /* NULL once deleted */
  int64_t accounted; /* bytes reported to napi_adjust_external_memory */
} aead_key;

/* The handles that hold contexts, most recently used first. Per thread: a
 * handle lives and dies on the thread (napi env) that made it. */
typedef struct {
  key_state *newest, *oldest;
  uint32_t bound;
  uint32_t limit;
} context_pool;

#define DEFAULT_CONTEXT_LIMIT 1024
/* src/edge/aead.ts sets the limit before the first key (OVPN_AEAD_CONTEXTS). */
static __thread context_pool pool = {NULL, NULL, 0, DEFAULT_CONTEXT_LIMIT};

/* What a handle costs the process beyond V8's view, so the GC sees handles as
 * heavier than their pointer and collects forgotten ones. */
#define KEY_EXTERNAL_BYTES 512

typedef struct {
  uint8_t *data;
  size_t len;
} span;

static napi_value throw_msg(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

static void pool_unlink(key_state *k) {
  if (k->newer != NULL) k->newer->older = k->older;
  else pool.newest = k->older;
  if (k->older != NULL) k->older->newer = k->newer;
  else pool.oldest = k->newer;
  k->newer = k->older = NULL;
}

static void pool_push_newest(key_state *k) {
  k->older = pool.newest;
  k->newer = NULL;
  if (pool.newest != NULL) pool.newest->newer = k;
  pool.newest = k;
  if (pool.oldest == NULL) pool.oldest = k;
}

/* Gives the handle contexts keyed with its keys: its own, fresh ones while the
 * pool is under its limit, or the pair of the least recently used handle.
 * 0 when OpenSSL refused (out of memory, or the key). */
static int key_bind(key_state *k) {
  if (k->ctx[0] != NULL) {
    if (pool.newest != k) {
      pool_unlink(k);
      pool_push_newest(k);
    }
    return 1;
  }
  EVP_CIPHER_CTX *ctx[2] = {NULL, NULL};
  if (pool.bound >= pool.limit && pool.oldest != NULL) {
    key_state *victim = pool.oldest;
    pool_unlink(victim);
    ctx[0] = victim->ctx[0];
    ctx[1] = victim->ctx[1];
    victim->ctx[0] = victim->ctx[1] = NULL;
    pool.bound--;
  } else {
    ctx[0] = EVP_CIPHER_CTX_new();
    ctx[1] = EVP_CIPHER_CTX_new();
  }
  /* Re-keying overwrites the previous owner's key schedule in place (or, for
   * another cipher, the provider frees it cleansed). */
  for (int d = 0; d < 2; d++) {
    if (ctx[d] == NULL || EVP_CipherInit_ex2(ctx[d], k->cipher, k->key[d], NULL, d == 0, NULL) != 1) {
      EVP_CIPHER_CTX_free(ctx[0]);
      EVP_CIPHER_CTX_free(ctx[1]);
      return 0;
    }
  }
  k->ctx[0] = ctx[0];
  k->ctx[1] = ctx[1];
  pool_push_newest(k);
  pool.bound++;
  return 1;
}

/* Frees the handle's contexts, if it holds any (EVP_CIPHER_CTX_free has the
 * provider clear the key schedule); it binds again at its next use. */
static void key_unbind(key_state *k) {
  if (k->ctx[0] == NULL) return;
  pool_unlink(k);
  pool.bound--;
  EVP_CIPHER_CTX_free(k->ctx[0]);
  EVP_CIPHER_CTX_free(k->ctx[1]);
  k->ctx[0] = k->ctx[1] = NULL;
}

/* Frees the key's contexts and wipes its key bytes: nothing of the key is left. */
static void key_wipe(aead_key *k) {
  key_state *st = k->state;
  if (st == NULL) return;
  key_unbind(st);
  EVP_CIPHER_free(st->cipher);
  OPENSSL_cleanse(st, sizeof *st);
  free(st);
  k->state = NULL;
}

static void key_finalize(napi_env env, void *data, void *hint) {
  aead_key *k = data;
  key_wipe(k);
  if (k->accounted != 0) {
    int64_t ignored;
    napi_adjust_external_memory(env, -k->accounted, &ignored);
  }
  OPENSSL_cleanse(k, sizeof *k);
  free(k);
}

/* The handle's struct (deleted or not), or NULL with a pending exception. */
static aead_key *get_handle(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype type;
  bool ours = false;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external ||
      napi_check_object_type_tag(env, v, &KEY_TAG, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, v, &p) != napi_ok || p == NULL || ((aead_key *)p)->magic != KEY_MAGIC) {
    napi_throw_type_error(env, NULL, "not an AEAD key handle");
    return NULL;
  }
  return p;
}

/* The handle's live key, or NULL with a pending exception: not ours, or deleted. */
static aead_key *get_key(napi_env env, napi_value v) {
  aead_key *k = get_handle(env, v);
  if (k == NULL) return NULL;
  if (k->state == NULL) {
    throw_msg(env, "ERR_AEAD_KEY_DELETED", "AEAD key handle used after delete");
    return NULL;
  }
  return k;
}

/* A Uint8Array's (or Buffer's) bytes; 0 for anything else (napi_get_typedarray_info refuses
 * non-typed-arrays itself, so no separate napi_is_typedarray per packet). */
static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  void *ptr;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  *data = ptr;
  return 1;
}

/* aeadKeyNew(name, encryptKey, decryptKey): a handle with one context per direction (pooled). */
static napi_value key_new(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3)
    return throw_msg(env, NULL, "aeadKeyNew(name, encryptKey, decryptKey)");
  char name[32];
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok || name_len >= sizeof name - 1) {
    napi_throw_type_error(env, NULL, "cipher name must be a short string");
    return NULL;
  }
  uint8_t *ek, *dk;
  size_t ek_len, dk_len;
  if (!get_bytes(env, argv[1], &ek, &ek_len) || !get_bytes(env, argv[2], &dk, &dk_len)) {
    napi_throw_type_error(env, NULL, "keys must be Uint8Arrays");
    return NULL;
  }
  EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
  if (cipher == NULL) return throw_msg(env, "ERR_AEAD_CIPHER", "cipher not available in Node's OpenSSL");
  if (EVP_CIPHER_get_mode(cipher) != EVP_CIPH_GCM_MODE && EVP_CIPHER_get_nid(cipher) != NID_chacha20_poly1305) {
    EVP_CIPHER_free(cipher);
    return throw_msg(env, "ERR_AEAD_CIPHER", "only AES-GCM and ChaCha20-Poly1305");
  }
  size_t key_len = (size_t)EVP_CIPHER_get_key_length(cipher);
  if (key_len > MAX_KEY || ek_len != key_len || dk_len != key_len || EVP_CIPHER_get_iv_length(cipher) != IV_SIZE) {
    EVP_CIPHER_free(cipher);
    return throw_range(env, "key length does not match the cipher");
  }
  aead_key *k = calloc(1, sizeof *k);
  key_state *st = calloc(1, sizeof *st);
  if (k == NULL || st == NULL) {
    free(k);
    free(st);
    EVP_CIPHER_free(cipher);
    return throw_msg(env, "ENOMEM", "out of memory");
  }
  k->magic = KEY_MAGIC;
  k->state = st;
  st->cipher = cipher;
  st->key_len = key_len;
  memcpy(st->key[0], ek, key_len);
  memcpy(st->key[1], dk, key_len);
  /* Bound now: a new key is about to be used, and OpenSSL's refusal belongs here. */
  if (!key_bind(st)) {
    key_wipe(k);
    free(k);
    return throw_range(env, "OpenSSL refused the key");
  }
  napi_value handle;
  if (napi_create_external(env, k, key_finalize, NULL, &handle) != napi_ok) {
    key_wipe(k);
    free(k);
    return throw_msg(env, NULL, "napi_create_external failed");
  }
  /* From here the finalizer owns k. */
  if (napi_type_tag_object(env, handle, &KEY_TAG) != napi_ok) return throw_msg(env, NULL, "napi_type_tag_object failed");
  int64_t ignored;
  k->accounted = KEY_EXTERNAL_BYTES;
  napi_adjust_external_memory(env, k->accounted, &ignored);
  return handle;
}

/* aeadKeyDelete(handle): frees its contexts and wipes its key now; later use throws. Idempotent. */
static napi_value key_delete(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "not an AEAD key handle");
    return NULL;
  }
  aead_key *k = get_handle(env, argv[0]);
  if (k == NULL) return NULL;
  key_wipe(k);
  if (k->accounted != 0) {
    int64_t ignored;
    napi_adjust_external_memory(env, -k->accounted, &ignored);
    k->accounted = 0;
  }
  return NULL;
}

/* One run's arguments, with every packet's ranges resolved and bounds-checked
 * before any byte is touched: a bad descriptor fails the call as a whole. */
typedef struct {
  aead_key *key;
  uint32_t count;
  int32_t *desc;
  const uint8_t *ivs;
  int32_t *results;
  uint8_t *base[RUN_MAX];
} run_args;

static int in_range(int32_t off, int32_t len, size_t cap) {
  return off >= 0 && len >= 0 && (size_t)off <= cap && (size_t)len <= cap - (size_t)off;
}

/* (handle, bufs, desc, ivs, count[, results]) */
static int parse_run(napi_env env, napi_callback_info info, run_args *r, int with_results) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < (size_t)(with_results ? 6 : 5)) {
    napi_throw_error(env, NULL, "expected (key, bufs, desc, ivs, count[, results])");
    return 0;
  }
  r->key = get_key(env, argv[0]);
  if (r->key == NULL) return 0;
  bool is_array = false;
  uint32_t nbufs = 0;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return napi_throw_type_error(env, NULL, "bufs must be an Array of Buffers"), 0;
  napi_get_array_length(env, argv[1], &nbufs);
  napi_typedarray_type type;
  size_t ndesc, nivs, nres = 0;
  void *ptr;
  if (napi_get_typedarray_info(env, argv[2], &type, &ndesc, &ptr, NULL, NULL) != napi_ok || type != napi_int32_array)
    return napi_throw_type_error(env, NULL, "desc must be an Int32Array"), 0;
  r->desc = ptr;
  uint8_t *ivs;
  if (!get_bytes(env, argv[3], &ivs, &nivs)) return napi_throw_type_error(env, NULL, "ivs must be a Uint8Array"), 0;
  r->ivs = ivs;
  int32_t count;
  if (napi_get_value_int32(env, argv[4], &count) != napi_ok)
    return napi_throw_type_error(env, NULL, "count must be a number"), 0;
  if (count < 0 || count > RUN_MAX) return throw_range(env, "count must be 0 to 128"), 0;
  r->count = (uint32_t)count;
  if (ndesc < r->count * D_STRIDE || nivs < r->count * IV_SIZE)
    return throw_range(env, "desc or ivs shorter than count packets"), 0;
  if (with_results) {
    if (napi_get_typedarray_info(env, argv[5], &type, &nres, &ptr, NULL, NULL) != napi_ok || type != napi_int32_array)
      return napi_throw_type_error(env, NULL, "results must be an Int32Array"), 0;
    if (nres < r->count) return throw_range(env, "results shorter than count"), 0;
    r->results = ptr;
  }
  for (uint32_t j = 0; j < r->count; j++) {
    const int32_t *d = r->desc + j * D_STRIDE;
    napi_value buf;
    uint8_t *data;
    size_t cap;
    if (d[D_INDEX] < 0 || (uint32_t)d[D_INDEX] >= nbufs) return throw_range(env, "buffer index out of range"), 0;
    if (napi_get_element(env, argv[1], (uint32_t)d[D_INDEX], &buf) != napi_ok || !get_bytes(env, buf, &data, &cap))
      return napi_throw_type_error(env, NULL, "bufs must hold Uint8Arrays"), 0;
    if (!in_range(d[D_AAD_OFF], d[D_AAD_LEN], cap) || !in_range(d[D_DATA_OFF], d[D_DATA_LEN], cap) ||
        !in_range(d[D_TAG_OFF], TAG_SIZE, cap))
      return throw_range(env, "AAD, data or tag range outside its buffer"), 0;
    r->base[j] = data;
  }
  return 1;
}

/* The key's contexts for a run, bound after every argument was read (reading
 * one could run JavaScript that binds other keys). NULL with an exception. */
static EVP_CIPHER_CTX *run_context(napi_env env, aead_key *k, int dir) {
  if (key_bind(k->state)) return k->state->ctx[dir];
  throw_msg(env, "ERR_AEAD_KEY", "OpenSSL could not set up the key's contexts");
  return NULL;
}

/* Per-thread scratch for open (see the top of this file). Grown, never shrunk;
 * a worker thread that exits leaves its copy behind. */
static __thread uint8_t *scratch;
static __thread size_t scratch_cap;

static uint8_t *scratch_for(size_t len) {
  if (len <= scratch_cap) return scratch;
  size_t cap = len < 2048 ? 2048 : len;
  uint8_t *p = realloc(scratch, cap);
  if (p == NULL) return NULL;
  scratch = p;
  scratch_cap = cap;
  return p;
}

/* aeadSeal(handle, bufs, desc, ivs, count): encrypts each data range in place
 * and writes its tag. Returns count. */
static napi_value seal(napi_env env, napi_callback_info info) {
  run_args r;
  if (!parse_run(env, info, &r, 0)) return NULL;
  EVP_CIPHER_CTX *ctx = run_context(env, r.key, 0);
  if (ctx == NULL) return NULL;
  for (uint32_t j = 0; j < r.count; j++) {
    const int32_t *d = r.desc + j * D_STRIDE;
    uint8_t *b = r.base[j];
    int outl = 0, finl = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, r.ivs + j * IV_SIZE, -1) != 1 ||
        (d[D_AAD_LEN] > 0 && EVP_EncryptUpdate(ctx, NULL, &outl, b + d[D_AAD_OFF], d[D_AAD_LEN]) != 1) ||
        (d[D_DATA_LEN] > 0 &&
         (EVP_EncryptUpdate(ctx, b + d[D_DATA_OFF], &outl, b + d[D_DATA_OFF], d[D_DATA_LEN]) != 1 ||
          outl != d[D_DATA_LEN])) ||
        EVP_EncryptFinal_ex(ctx, b + d[D_DATA_OFF] + d[D_DATA_LEN], &finl) != 1 || finl != 0 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_SIZE, b + d[D_TAG_OFF]) != 1)
      return throw_msg(env, "ERR_AEAD_SEAL", "OpenSSL failed to seal a packet");
  }
  napi_value n;
  napi_create_uint32(env, r.count, &n);
  return n;
}

/* aeadOpen(handle, bufs, desc, ivs, count, results): results[j] is the
 * plaintext length, written over the ciphertext, or AUTH_FAILED with the
 * buffer untouched. Returns how many verified. */
static napi_value open_run(napi_env env, napi_callback_info info) {
  run_args r;
  if (!parse_run(env, info, &r, 1)) return NULL;
  EVP_CIPHER_CTX *ctx = run_context(env, r.key, 1);
  if (ctx == NULL) return NULL;
  uint32_t good = 0;
  for (uint32_t j = 0; j < r.count; j++) {
    const int32_t *d = r.desc + j * D_STRIDE;
    uint8_t *b = r.base[j];
    int len = d[D_DATA_LEN];
    uint8_t *out = scratch_for((size_t)len + 1);
    if (out == NULL) return throw_msg(env, "ENOMEM", "out of memory");
    int outl = 0, finl = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, r.ivs + j * IV_SIZE, -1) != 1 ||
        (d[D_AAD_LEN] > 0 && EVP_DecryptUpdate(ctx, NULL, &outl, b + d[D_AAD_OFF], d[D_AAD_LEN]) != 1) ||
        (len > 0 && (EVP_DecryptUpdate(ctx, out, &outl, b + d[D_DATA_OFF], len) != 1 || outl != len)) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_SIZE, b + d[D_TAG_OFF]) != 1)
      return throw_msg(env, "ERR_AEAD_OPEN", "OpenSSL failed to open a packet");
    if (EVP_DecryptFinal_ex(ctx, out + len, &finl) == 1 && finl == 0) {
      memcpy(b + d[D_DATA_OFF], out, (size_t)len);
      r.results[j] = len;
      good++;
    } else {
      OPENSSL_cleanse(out, (size_t)len);
      r.results[j] = AUTH_FAILED;
    }
  }
  napi_value n;
  napi_create_uint32(env, good, &n);
  return n;
}

/* aeadOpenSSL(): the version of the OpenSSL these calls run on, to compare
 * with process.versions.openssl. */
static napi_value openssl_version(napi_env env, napi_callback_info info) {
  napi_value v;
  napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &v);
  return v;
}

/* aeadContexts([limit]): sets how many handles may hold contexts at once (from
 * the next bind on; 1..1<<20), and returns [bound, limit]. */
static napi_value contexts(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_undefined) {
    uint32_t limit = 0;
    if (type != napi_number || napi_get_value_uint32(env, argv[0], &limit) != napi_ok || limit < 1 || limit > (1u << 20))
      return throw_range(env, "the context limit must be a whole number from 1 to 1048576");
    pool.limit = limit;
    /* A lower limit applies now: the least recently used give their contexts up. */
    while (pool.bound > pool.limit && pool.oldest != NULL) key_unbind(pool.oldest);
  }
  if (napi_create_array_with_length(env, 2, &out) != napi_ok) return NULL;
  napi_create_uint32(env, pool.bound, &v);
  napi_set_element(env, out, 0, v);
  napi_create_uint32(env, pool.limit, &v);
  napi_set_element(env, out, 1, v);
  return out;
}

void aead_register(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"aeadKeyNew", NULL, key_new, NULL, NULL, NULL, napi_default, NULL},
      {"aeadKeyDelete", NULL, key_delete, NULL, NULL, NULL, napi_default, NULL},
      {"aeadSeal", NULL, seal, NULL, NULL, NULL, napi_default, NULL},
      {"aeadOpen", NULL, open_run, NULL, NULL, NULL, napi_default, NULL},
      {"aeadOpenSSL", NULL, openssl_version, NULL, NULL, NULL, napi_default, NULL},
      {"aeadContexts", NULL, contexts, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
