#!/usr/bin/env bash
# Smoke test of the benchmarks (ctest label "bench"): runs bench_echo,
# bench_greeter (also with a 1 KB name, with --async, and in protobuf against
# greeter-proto-server), bench_discovery on the memory registry and, when
# built, the gRPC C++ pair and the gRPC C++ streaming client
# for 1 second each against fresh servers and fails if one makes no calls
# or reports an error.
#   bench/smoke.sh BUILD_DIR        the C and C++ programs
#   bench/smoke.sh BUILD_DIR go     go build the Go Micro contenders
#                                   (bench/go: unary and streaming) and run
#                                   them; exit 77 (skip) without a Go
#                                   toolchain
set -uo pipefail

BUILD=${1:?usage: smoke.sh BUILD_DIR [go]}
MODE=${2:-c}
SERVER=$BUILD/greeter-server
ECHO=$BUILD/bench/bench_echo
GREETER=$BUILD/bench/bench_greeter
GRPC_SERVER=$BUILD/bench/bench_grpc_server
GRPC_CLIENT=$BUILD/bench/bench_grpc_client
GRPC_STREAM_CLIENT=$BUILD/bench/bench_grpc_stream_client
for b in "$SERVER" "$ECHO" "$GREETER"; do
    if [ ! -x "$b" ]; then
        echo "smoke: $b is not built" >&2
        exit 1
    fi
done

TMP=$(mktemp -d /tmp/cmicro-smoke.XXXXXX)
PIDS=()
ADDR=
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# start NAME CMD...: run CMD in the background and set ADDR to the
# "host:port" it announces on stdout ("... listening on HOST:PORT"). Not
# run in a subshell, so that PIDS keeps the server for cleanup.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    local i addr
    for i in $(seq 1 500); do
        addr=$(grep -o 'listening on [0-9.:]*' "$TMP/$name.out" |
            sed 's/listening on //')
        if [ -n "$addr" ]; then
            ADDR=$addr
            return 0
        fi
        sleep 0.01
    done
    echo "smoke: $name did not start: $(cat "$TMP/$name.err")" >&2
    return 1
}

# check NAME JSON: fail unless calls_per_s > 0 and errors == 0.
check() {
    local name=$1 json=$2
    echo "$name: $json"
    local calls errors
    calls=$(echo "$json" | sed -n 's/.*"calls_per_s":\([0-9.]*\).*/\1/p')
    errors=$(echo "$json" | sed -n 's/.*"errors":\([0-9-]*\).*/\1/p')
    if [ -z "$calls" ] || [ "${calls%%.*}" -eq 0 ]; then
        echo "smoke: $name made no calls" >&2
        return 1
    fi
    if [ -z "$errors" ] || [ "$errors" != 0 ]; then
        echo "smoke: $name reported ${errors:-unknown} errors" >&2
        return 1
    fi
}

# check_stream NAME JSON: the same for a streaming client (msgs_per_s).
check_stream() {
    local name=$1 json=$2
    echo "$name: $json"
    local msgs errors
    msgs=$(echo "$json" | sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p')
    errors=$(echo "$json" | sed -n 's/.*"errors":\([0-9-]*\).*/\1/p')
    if [ -z "$msgs" ] || [ "${msgs%%.*}" -eq 0 ]; then
        echo "smoke: $name moved no messages" >&2
        return 1
    fi
    if [ -z "$errors" ] || [ "$errors" != 0 ]; then
        echo "smoke: $name reported ${errors:-unknown} errors" >&2
        return 1
    fi
}

fail=0
if [ "$MODE" = go ]; then
    export PATH="$PATH:/usr/local/go/bin"
    if ! command -v go >/dev/null; then
        echo "smoke: no Go toolchain" >&2
        exit 77
    fi
    HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    (cd "$HERE/go" && go build -o "$TMP/" ./server ./client ./streamclient ./churn) ||
        exit 1
    start goserver "$TMP/server" --server_address=127.0.0.1:0 \
        --registry=memory || exit 1
    out=$("$TMP/client" -address "$ADDR" -inflight 4 -duration 1 \
        -warmup 0.2) || fail=1
    check go-micro "$out" || fail=1
    out=$("$TMP/streamclient" -address "$ADDR" -streams 4 -duration 0.5 \
        -warmup 0.2 -size 64) || fail=1
    check_stream "go-micro streamclient" "$out" || fail=1
    exit $fail
fi

start echo "$ECHO" server 0 || exit 1
out=$("$ECHO" client "$ADDR" --inflight 4 --duration 1 --warmup 0.2) ||
    fail=1
check bench_echo "$out" || fail=1

start greeter "$SERVER" --server_address=127.0.0.1:0 --registry=memory ||
    exit 1
out=$("$GREETER" --address "$ADDR" --inflight 4 --duration 1) || fail=1
check bench_greeter "$out" || fail=1
out=$("$GREETER" --address "$ADDR" --inflight 4 --duration 0.5 --warmup 0.1 \
    --size 1024) || fail=1
check "bench_greeter --size 1024" "$out" || fail=1
out=$("$GREETER" --address "$ADDR" --inflight 16 --duration 0.5 --warmup 0.1 \
    --async) || fail=1
check "bench_greeter --async" "$out" || fail=1
# bench/stream.c, once CMake builds it (the library's stream API).
if [ -x "$BUILD/bench/bench_stream" ]; then
    out=$("$BUILD/bench/bench_stream" --address "$ADDR" --streams 4 \
        --duration 0.5 --warmup 0.1 --size 64) || fail=1
    check_stream bench_stream "$out" || fail=1
fi

PROTO_SERVER=$BUILD/greeter-proto-server
if [ -x "$PROTO_SERVER" ]; then
    start greeter-proto "$PROTO_SERVER" --server_address=127.0.0.1:0 \
        --registry=memory || exit 1
    out=$("$GREETER" --address "$ADDR" --inflight 4 --duration 0.5 \
        --warmup 0.1 --content_type application/protobuf) || fail=1
    check "bench_greeter protobuf" "$out" || fail=1
    out=$("$GREETER" --address "$ADDR" --inflight 4 --duration 0.5 \
        --warmup 0.1 --content_type application/protobuf --size 1024) ||
        fail=1
    check "bench_greeter protobuf --size 1024" "$out" || fail=1
else
    echo "smoke: $PROTO_SERVER is not built" >&2
    fail=1
fi

# bench/discovery.c on the memory registry (the others need servers:
# bench/discovery.sh): every mode answers and reports no failure.
DISCOVERY=$BUILD/bench/bench_discovery
if [ -x "$DISCOVERY" ]; then
    out=$(MICRO_REGISTRY= "$DISCOVERY" side memory 2 50) || fail=1
    echo "$out" | grep -q '^row memory .*failed=0$' ||
        { echo "smoke: bench_discovery side: $out" >&2; fail=1; }
    out=$("$DISCOVERY" churn memory 1 2) || fail=1
    echo "$out" | awk '$1 == "churn" && $3 > 0 && $4 == 0 {ok = 1}
        END {exit !ok}' ||
        { echo "smoke: bench_discovery churn: $out" >&2; fail=1; }
fi

if [ -x "$GRPC_SERVER" ] && [ -x "$GRPC_CLIENT" ]; then
    # libgrpc++ is not built with the sanitizers and frees some of its
    # globals only at exit, so leak reports there are not ours.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    start grpc "$GRPC_SERVER" 127.0.0.1:0 || exit 1
    out=$("$GRPC_CLIENT" --address "$ADDR" --inflight 4 --duration 1 \
        --warmup 0.2) || fail=1
    check bench_grpc_client "$out" || fail=1
    if [ -x "$GRPC_STREAM_CLIENT" ]; then
        out=$("$GRPC_STREAM_CLIENT" --address "$ADDR" --streams 4 \
            --duration 0.5 --warmup 0.1 --size 1024) || fail=1
        check_stream bench_grpc_stream_client "$out" || fail=1
    fi
fi
exit $fail
