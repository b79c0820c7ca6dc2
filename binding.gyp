{
  "targets": [
    {
      "target_name": "ovpn_io",
      "sources": ["native/ovpn_io.c", "native/aead.c", "native/checksum.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags!": ["-O3"],
      "cflags_c": ["-std=gnu11"],
      "ldflags": ["-Wl,-z,now"]
    },
    {
      "target_name": "check_openssl",
      "type": "none",
      "dependencies": ["ovpn_io"],
      "actions": [
        {
          "action_name": "check_openssl",
          "inputs": ["<(PRODUCT_DIR)/ovpn_io.node", "native/check-openssl.cjs"],
          "outputs": ["<(INTERMEDIATE_DIR)/openssl-checked.stamp"],
          "action": ["node", "native/check-openssl.cjs", "<(PRODUCT_DIR)/ovpn_io.node", "<(INTERMEDIATE_DIR)/openssl-checked.stamp"]
        }
      ]
    }
  ]
}
