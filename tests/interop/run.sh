#!/usr/bin/env bash
# Runs the Go Micro <-> cmicro interop tests. Needs CMICRO_BIN_DIR = a cmicro
# CMake build dir containing greeter-server and cmicro. Exit code propagates.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
go mod download
CMICRO_BIN_DIR=${CMICRO_BIN_DIR:?set CMICRO_BIN_DIR to the cmicro CMake build dir} \
  exec go test -count=1 -v ./...
