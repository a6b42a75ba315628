#!/usr/bin/env bash
# gRPC over HTTP/2, server side: h2load (nghttp2-client) sends the same
# unary gRPC request (bench.Greeter/Hello, HelloRequest{name:"John"},
# application/grpc) to cmicro's gRPC server (greeter-proto-server
# --server=grpc: the path's text after the last dot names the handler, so
# /bench.Greeter/Hello is its Greeter.Hello) and to gRPC C++'s callback
# server (bench_grpc_server), 64 concurrent streams over 1 connection and
# over 4 (16 each); and cmicro's gRPC server over TLS ("cmicro-tls":
# --transport_secure with its self-signed certificate; h2load https://,
# h2 by ALPN, one handshake per connection). Servers pinned to SERVER_CPU
# (one core), h2load to CLIENT_CPU. Prints a Markdown table of the medians
# of RUNS runs.
#
#   bench/h2load.sh                 # BUILD_DIR (build-bench), RUNS (3),
#                                   # REQUESTS (100000) per run
# bench/run.sh includes it (contender "grpc-h2load").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-100000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
command -v h2load >/dev/null || { echo "h2load: not installed (nghttp2-client)" >&2; exit 1; }
CMICRO=$BUILD/greeter-proto-server
GRPCXX=$BUILD/bench/bench_grpc_server
TMP=$(mktemp -d /tmp/cmicro-h2load.XXXXXX)
cleanup() {
    # start() runs in a command substitution (a subshell): its PIDs come
    # back through files, not the array.
    local f
    for f in "$TMP"/*.pid; do
        [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
python3 -c "
import struct, sys
body = b'\x0a\x04John'
sys.stdout.buffer.write(b'\x00' + struct.pack('>I', len(body)) + body)" >"$TMP/req.bin"

start() { # name argv...: prints the address it listens on
    local name=$1
    shift
    taskset -c "$SERVER_CPU" "$@" >"$TMP/$name.out" 2>&1 &
    echo $! >"$TMP/$name.pid"
    local i
    for i in $(seq 1 500); do
        grep -q 'listening on' "$TMP/$name.out" && break
        sleep 0.01
    done
    grep -o 'listening on [0-9.:]*' "$TMP/$name.out" | head -1 | awk '{print $3}'
}

declare -A ADDR
ADDR[cmicro]=$(start cmicro "$CMICRO" --server=grpc --registry=memory \
    --server_address=127.0.0.1:0)
ADDR[cmicro-tls]=$(start cmicro-tls "$CMICRO" --server=grpc --registry=memory \
    --server_address=127.0.0.1:0 --transport_secure)
if [ -x "$GRPCXX" ]; then
    ADDR[grpc++]=$(start grpcxx "$GRPCXX" 127.0.0.1:0)
fi

: >"$TMP/res.tsv"
for r in $(seq 1 "$RUNS"); do
    for who in "${!ADDR[@]}"; do
        for cm in "1 64" "4 16"; do
            set -- $cm
            scheme=http
            [ "$who" = cmicro-tls ] && scheme=https
            out=$(taskset -c "$CLIENT_CPU" h2load -n "$REQUESTS" -c "$1" -m "$2" \
                -d "$TMP/req.bin" -H 'content-type: application/grpc' \
                -H 'te: trailers' "$scheme://${ADDR[$who]}/bench.Greeter/Hello" 2>&1)
            rps=$(echo "$out" | awk '/^finished in/ {print $4}')
            ok=$(echo "$out" | awk '/^requests:/ {print $8}')
            printf '%s\t%s\t%s\t%s\n' "$who" "$1x$2" "$rps" "$ok" >>"$TMP/res.tsv"
        done
    done
done
python3 - "$TMP/res.tsv" "$REQUESTS" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who, shape, rps, ok = line.split("\t")
    rows[(who, shape)].append((float(rps), int(ok)))
print("| server | connections x streams | calls/s (median) | succeeded |")
print("|---|---|---:|---:|")
for (who, shape), v in sorted(rows.items()):
    print("| %s | %s | %.0f | %d of %d |" % (who, shape,
        statistics.median(x[0] for x in v), min(x[1] for x in v), int(sys.argv[2])))
for shape in ("1x64", "4x16"):
    for x, y, what in (("cmicro", "grpc++", "cmicro / gRPC C++"),
                       ("cmicro-tls", "cmicro", "cmicro TLS / plaintext")):
        a, b = rows.get((x, shape)), rows.get((y, shape))
        if a and b:
            print("\n%s at %s: %.2fx" % (what, shape,
                statistics.median(v[0] for v in a) / statistics.median(v[0] for v in b)))
PY
