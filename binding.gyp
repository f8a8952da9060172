{
  "targets": [
    {
      "target_name": "dtls",
      "sources": ["hardware/dtls/dtls_core.c", "hardware/dtls/napi_binding.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags": ["-Wall"],
      "cflags_c": ["-std=c99"],
      "cflags_cc": ["-std=c++17"],
      "libraries": ["-lmbedtls", "-lmbedx509", "-lmbedcrypto"],
      "xcode_settings": { "OTHER_LDFLAGS": ["-lmbedtls", "-lmbedx509", "-lmbedcrypto"] }
    }
  ]
}
