{
  "variables": {
    # tools/paths.js: the library bundled in the package (lib/<soname>, rpath
    # $ORIGIN/../../lib), or the directory $SFU_LIBRARY_PATH at build time (rpath: it).
    "sfu_lib_dir%": "<!(node tools/paths.js lib)",
    "sfu_lib_name%": "<!(node tools/paths.js libname)",
    "sfu_rpath%": "<!(node tools/paths.js rpath)",
    "sfu_include_dir%": "<!(node tools/paths.js include)"
  },
  "targets": [
    {
      "target_name": "sfu",
      "sources": ["src/addon.c"],
      "include_dirs": ["<(sfu_include_dir)"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-L<(sfu_lib_dir)", "-l:<(sfu_lib_name)", "-Wl,-rpath,<(sfu_rpath)"]
    }
  ]
}
