#!/usr/bin/env bash
# Build the Consul agent the registry tests start (`consul agent -dev` on
# loopback), once per machine, from the Go module proxy: Debian has no Consul,
# and 1.14.8 is the last release that is open source and builds without the
# modules 1.15+ require (see /work/shared/NOTES-deps.md). The binary is cached
# outside any build dir; tests look there or at $MICRO_CONSUL_BIN.
#   scripts/consul.sh          build if missing, print the binary's path
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.14.8
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/cmicro/consul-$VERSION"
BIN="$CACHE/consul"
if [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "v$VERSION"; then
  echo "$BIN"; exit 0
fi
export PATH="$PATH:/usr/local/go/bin"
mkdir -p "$CACHE"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp tests/consul/go.mod tests/consul/tools.go "$WORK/"
cd "$WORK"
export GOFLAGS=-mod=mod
start=$(date +%s)
echo "consul.sh: building Consul v$VERSION (several CPU-minutes, once)" >&2
go mod tidy >&2
# api v1.18.0 (named by Consul's go.mod) lacks RaftServer.LastIndex; v1.18.1
# has it, v1.19+ breaks proto/pbpeering.
go get github.com/hashicorp/consul/api@v1.18.1 >&2
nice go build -trimpath -o "$BIN.tmp" github.com/hashicorp/consul >&2
mv "$BIN.tmp" "$BIN"
echo "consul.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
