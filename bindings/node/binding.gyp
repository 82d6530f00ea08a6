{
  "variables": {
    # Directory holding libsfu.so: $SFU_LIBRARY_PATH at build time, else <repo>/target/release.
    "sfu_lib_dir%": "<!(node tools/paths.js lib)",
    "sfu_include_dir%": "<!(node tools/paths.js include)"
  },
  "targets": [
    {
      "target_name": "sfu",
      "sources": ["src/addon.c"],
      "include_dirs": ["<(sfu_include_dir)"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-L<(sfu_lib_dir)", "-lsfu", "-Wl,-rpath,<(sfu_lib_dir)"]
    }
  ]
}
