#!/usr/bin/env bash
# Runs the Go Micro <-> cmicro interop tests. Needs CMICRO_BIN_DIR = a cmicro
# CMake build dir containing greeter-server and cmicro. Exit code propagates.
#
# Modules are downloaded and the test binary is compiled first; then, when
# we are root, the tests run inside a private network namespace with only
# loopback (multicast routed to lo). Go Micro peers default to the mDNS
# registry and may join multicast groups; in the namespace nothing any peer
# does can leave the machine.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
export CMICRO_BIN_DIR=${CMICRO_BIN_DIR:?set CMICRO_BIN_DIR to the cmicro CMake build dir}
go mod download
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/interop.test" .
# Peers the tests build later (go build ./goserver ...) must not need the
# network either: everything is in the module cache now.
export GOFLAGS=-mod=mod GOPROXY=off
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null; then
  echo "interop: running in a private network namespace (loopback only)"
  unshare --net sh -c '
    ip link set lo up &&
    ip route add 224.0.0.0/4 dev lo &&
    exec "$0" -test.count=1 -test.v' "$tmp/interop.test"
else
  echo "interop: not root (or no unshare/ip): running in the host namespace"
  "$tmp/interop.test" -test.count=1 -test.v
fi
