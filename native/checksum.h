/* The Internet checksum of checksum.c, registered on the ovpn_io addon's exports. */
#ifndef OVPN_CHECKSUM_H
#define OVPN_CHECKSUM_H
#include <node_api.h>

void checksum_register(napi_env env, napi_value exports);

#endif
