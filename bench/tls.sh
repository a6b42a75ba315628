#!/usr/bin/env bash
# TLS cost on the http transport, same machine, same run: Greeter.Hello
# calls per second against greeter-server without and with TLS
# (transport_secure, an ECDSA P-256 certificate made here with the openssl
# CLI), with the loop-native client (bench_greeter --async: the same
# client path both ways; the blocking fast path is plain TCP only), at 1
# and 64 calls in flight over pooled connections; and handshakes per
# second: every call on a new connection (--pool 0), plain and TLS.
#
#   bench/tls.sh                 # BUILD_DIR (build), DURATION (3) seconds
#
# Server pinned to SERVER_CPU (0), client to CLIENT_CPU (1).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
DURATION=${DURATION:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
D=$(mktemp -d)
cleanup() {
    # start() runs in a command substitution (a subshell): its PIDs come
    # back through files, not a variable.
    local f
    for f in "$D"/*.pid; do
        [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$D"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/O=cmicro bench" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() { # name args...
    local port
    port=$(free_port)
    taskset -c "$SERVER_CPU" "$BUILD/greeter-server" --server_address=127.0.0.1:$port \
        --registry=memory "$@" >"$D/srv-$port.log" 2>&1 &
    echo $! >"$D/srv-$port.pid"
    for _ in $(seq 100); do
        grep -q "listening on" "$D/srv-$port.log" 2>/dev/null && break
        sleep 0.05
    done
    echo "127.0.0.1:$port"
}

PLAIN=$(start)
TLS=$(start --transport_secure=true --transport_tls_cert_file="$D/cert.pem" \
    --transport_tls_key_file="$D/key.pem")

bench() { # addr extra...
    taskset -c "$CLIENT_CPU" "$BUILD/bench/bench_greeter" --address "$1" --async \
        --duration "$DURATION" --warmup 0.5 "${@:2}"
}
field() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%.0f %.0f %d" % (d["calls_per_s"], d["p99_us"], d["errors"]))'; }

echo "| run | plain calls/s | TLS calls/s | TLS/plain | plain p99 us | TLS p99 us |"
echo "|---|---|---|---|---|---|"
for k in 1 64; do
    read -r pc pp pe < <(bench "$PLAIN" --inflight $k | field)
    read -r tc tp te < <(bench "$TLS" --inflight $k --tls "$D/cert.pem" | field)
    printf "| pooled, %d in flight | %s | %s | %.2f | %s | %s |\n" $k "$pc" "$tc" \
        "$(python3 -c "print($tc/$pc)")" "$pp" "$tp"
    [ "$pe" = 0 ] && [ "$te" = 0 ] || echo "errors: plain $pe, TLS $te" >&2
done
for k in 1 16; do
    read -r pc pp pe < <(bench "$PLAIN" --inflight $k --pool 0 | field)
    read -r tc tp te < <(bench "$TLS" --inflight $k --pool 0 --tls "$D/cert.pem" | field)
    printf "| new connection per call (TLS: one handshake each), %d in flight | %s | %s | %.2f | %s | %s |\n" \
        $k "$pc" "$tc" "$(python3 -c "print($tc/$pc)")" "$pp" "$tp"
    [ "$pe" = 0 ] && [ "$te" = 0 ] || echo "errors: plain $pe, TLS $te" >&2
done
