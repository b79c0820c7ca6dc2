/*
 * The Internet checksum (RFC 1071) over one range of a buffer, for the
 * segmenting and coalescing of TCP super-packets (src/core/gso.ts), which sum
 * nearly every byte the tunnel carries. Plain arithmetic on bytes: which
 * ranges, pseudo-headers and fields stay in TypeScript, whose loop in
 * src/core/checksum.ts is the reference this one is tested against.
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "checksum.h"

/* Folds a sum to 16 bits, end-around carry included. */
static uint32_t fold64(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint32_t)s;
}

/* The ones' complement sum of p[0, n) as big-endian 16-bit words, folded; an
 * odd last byte counts as its high half. Words are added in host order and the
 * result swapped once (RFC 1071 2(B): the sum commutes with byte swapping). */
static uint32_t range_sum(const uint8_t *p, size_t n) {
  uint64_t s = 0;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    s += (w >> 32) + (w & 0xffffffffu);
  }
  if (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    s += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    s += w;
    p += 2;
    n -= 2;
  }
  uint32_t h = fold64(s);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  h = ((h & 0xff) << 8) | (h >> 8);
#endif
  if (n == 1) h += (uint32_t)p[0] << 8;
  return fold64(h);
}

/* inetSum(buf, start, end, acc): acc (a folded sum, 0..0xffff) plus the sum
 * of buf[start, end), folded. */
static napi_value inet_sum(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, NULL, "inetSum(buf, start, end, acc)");
    return NULL;
  }
  napi_typedarray_type type;
  size_t len;
  void *data;
  if (napi_get_typedarray_info(env, argv[0], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "buf must be a Uint8Array");
    return NULL;
  }
  int32_t start, end;
  uint32_t acc;
  if (napi_get_value_int32(env, argv[1], &start) != napi_ok || napi_get_value_int32(env, argv[2], &end) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &acc) != napi_ok) {
    napi_throw_type_error(env, NULL, "start, end and acc must be numbers");
    return NULL;
  }
  if (start < 0 || end < start || (size_t)end > len || acc > 0xffff) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "need 0 <= start <= end <= buf.length and acc <= 0xffff");
    return NULL;
  }
  napi_value result;
  if (napi_create_uint32(env, fold64((uint64_t)acc + range_sum((const uint8_t *)data + start, (size_t)(end - start))),
                         &result) != napi_ok)
    return NULL;
  return result;
}

void checksum_register(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"inetSum", NULL, inet_sum, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
