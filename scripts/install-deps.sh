#!/usr/bin/env bash
# Install what cmicro needs to build, test and benchmark, from Debian's
# packages and the Go module proxy. Idempotent; run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake ninja-build pkg-config g++
  libuv1-dev libcjson-dev libhttp-parser-dev libcmocka-dev
  zlib1g-dev               # the mDNS registry: TXT payload (zlib)
  libssl-dev openssl       # TLS and mTLS (src/io/tls.c); the CLI in tests
  libnats-dev nats-server  # the NATS broker (cnats) and its tests
  etcd-server etcd-client  # the etcd registry's tests (etcd 3.4, v3 JSON gateway)
  # protobuf (issue 5): the protobuf-c runtime and protoc-gen-c, protoc,
  # and the .proto files protoc-gen-cmicro and the well-known types are
  # generated from (descriptor.proto, compiler/plugin.proto).
  libprotobuf-c-dev libnghttp2-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev
  libprotoc-dev
  curl wrk             # benchmarks and smoke tests
  # test.sh's clang and fuzz tiers: clang 14, and its runtime, which holds
  # libFuzzer (libclang_rt.fuzzer) and the sanitizers.
  clang libclang-rt-14-dev
  # bench/run.sh contenders and its chart: gRPC C++ greeter (Debian's
  # libgrpc++), nginx answering a fixed body, h2load, the PNG chart.
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  nginx-light nghttp2-client gnuplot-nox
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Go: the interop tests build real Go Micro v4 peers. Machines of this kind
# ship Go in /usr/local/go; Debian's golang-go (1.19) is too old for the
# module, so it is only a last resort.
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "install-deps: no Go toolchain; installing Debian's golang-go" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
fi
(cd tests/interop && go mod download)
(cd bench/go && go mod download)   # the Go Micro contenders and bench/go/churn

# Python grpcio (PyPI) for the gRPC interop test (tests/interop/py): a venv
# outside the tree, found by tests/interop/py/run.sh at the same path.
PYVENV=${CMICRO_PY_VENV:-$HOME/.cache/cmicro/grpcio-venv}
if ! "$PYVENV/bin/python" -c "import grpc, grpc_tools" 2>/dev/null; then
  echo "install-deps: grpcio and grpcio-tools into $PYVENV"
  python3 -m venv "$PYVENV"
  "$PYVENV/bin/pip" install -q grpcio==1.85.1 grpcio-tools==1.85.1
fi

# The Consul registry's tests run a real Consul agent: Debian has none, so
# v1.14.8 (MPL-2.0) is built from the Go module proxy, once per machine
# (~/.cache/cmicro/consul-1.14.8/consul; several CPU-minutes the first time).
scripts/consul.sh >/dev/null
echo "install-deps: ok"
