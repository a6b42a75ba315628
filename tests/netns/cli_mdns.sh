#!/usr/bin/env bash
# The CLI over mDNS with no flag at all: greeter-server and `cmicro list
# services`, `cmicro get service greeter` and `cmicro call greeter
# Greeter.Hello` on the default registry (mdns), in a private network
# namespace that holds only lo (unshare --net), so nothing multicasts on
# the host's interfaces. Exit 77 (skip) when not root / no unshare or ip.
#
# Usage: cli_mdns.sh BUILD_DIR
set -uo pipefail
BUILD=${1:?usage: cli_mdns.sh BUILD_DIR}
if [ "${CMICRO_IN_NETNS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root for unshare --net"; exit 77; }
  command -v unshare >/dev/null && command -v ip >/dev/null ||
    { echo "SKIP: needs unshare(1) and ip(8)"; exit 77; }
  CMICRO_IN_NETNS=1 exec unshare --net "$0" "$@"
fi
ip link set lo up
ip route add 224.0.0.0/4 dev lo
unset MICRO_REGISTRY MICRO_REGISTRY_ADDRESS   # the default, whatever ctest set

"$BUILD/greeter-server" --server_address=127.0.0.1:18090 >/dev/null 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
fail=0
expect() { # what, needle, command...
  local what=$1 needle=$2; shift 2
  local out
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    out=$("$@" 2>&1) && grep -q -- "$needle" <<<"$out" && {
      echo "ok: $what"; return; }
    sleep 0.3
  done
  echo "FAIL: $what: wanted \"$needle\", got:"; echo "$out"; fail=1
}
expect "cmicro list services" '^greeter$' "$BUILD/cmicro" list services
expect "cmicro get service greeter" '"name":"Greeter.Hello"' \
  "$BUILD/cmicro" get service greeter
expect "cmicro get service greeter (address)" '"address":"127.0.0.1:18090"' \
  "$BUILD/cmicro" get service greeter
expect "cmicro call greeter Greeter.Hello" '"msg":"Hello John"' \
  "$BUILD/cmicro" call greeter Greeter.Hello '{"name":"John"}'
exit $fail
