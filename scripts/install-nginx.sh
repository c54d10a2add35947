#!/usr/bin/env bash
# Installs Debian's NGINX with its Lua module (lua-nginx-module on OpenResty's LuaJIT), which
# the native library's tests run in (`make nginx-test`, native/tests/nginx.rs), unless both are
# already there. Prints the path of the nginx binary and of the module directory.
set -euo pipefail

modules=${NGINX_MODULES:-/usr/lib/nginx/modules}
if ! command -v nginx >/dev/null || [[ ! -f $modules/ngx_http_lua_module.so ]]; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq
  # The packages' own service is not started: the tests run their own nginx on loopback.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    nginx libnginx-mod-http-lua >/dev/null
fi
nginx -v >&2
echo "$(command -v nginx)"
echo "$modules"
