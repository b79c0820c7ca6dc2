/* The batched AEAD of aead.c, registered on the ovpn_io addon's exports. */
#ifndef OVPN_AEAD_H
#define OVPN_AEAD_H
#include <node_api.h>

void aead_register(napi_env env, napi_value exports);

#endif
