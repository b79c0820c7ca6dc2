{
  "targets": [
    {
      "target_name": "floor",
      "sources": ["floor.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags!": ["-O3"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
