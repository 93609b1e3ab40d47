{
  "targets": [
    {
      "target_name": "lvs_native",
      "sources": ["src/addon.c", "src/syscalls.c", "src/bpf-asm.c", "src/steer.c", "src/encap.c", "src/decap.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags!": ["-O3", "-Wno-unused-parameter"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
