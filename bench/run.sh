#!/usr/bin/env bash
# cmicro benchmark suite: one command builds every contender, runs them one
# after another, and prints one Markdown report of medians and same-round
# ratios.
#
#   bench/run.sh [--write-docs]      # writes docs/benchmarks.md + docs/bench.png
#   FAST=1 bench/run.sh              # iteration: RUNS=1 DURATION=1
#
# Environment: RUNS (3) repetitions of every measurement, DURATION (3)
# seconds measured per client run (after WARMUP, 0.5 s; wrk has no warm-up
# and runs DURATION), INFLIGHTS ("1 16 64 256"), SIZES ("0 1024": 0 is
# {"name":"John"}, N a name of N bytes, run at BIG_INFLIGHT=64 only),
# IDLE_CONNS (10000), CONTENDERS (all; see below), BUILD_DIR (build-bench),
# BEFORE_REV (4741dc4: the pre-redesign contenders' source),
# SERVER_CPU (0), CLIENT_CPU (1), FAST (0); for the streaming contenders
# STREAMS ("1 64") concurrent streams and STREAM_SIZES ("64 1024") bytes
# per encoded request.
#
# Contenders (server / load generator), each serving Greeter.Hello
# {"name":N} -> {"msg":"Hello N"}:
#   echo         bench_echo server / bench_echo client (epoll): raw TCP limit
#   cmicro       greeter-server (Hello inline on the loop) / bench_greeter
#   cmicro-pool  greeter-server --no_inline (worker pool) / bench_greeter
#   cmicro-async greeter-server / bench_greeter --async (one loop thread,
#                micro_client_call_async)
#   cmicro-wrk   greeter-server / wrk -s bench/greeter.lua
#   cmicro-proto greeter-proto-server (protoc-gen-cmicro stubs, inline) /
#                bench_greeter --content_type application/protobuf
#   cmicro-proto-wrk  greeter-proto-server / wrk, BENCH_CODEC=protobuf
#                (both protobuf rows at BIG_INFLIGHT only)
#   gomicro      Go Micro v4.11.0 server / Go Micro client (bench/go)
#   gomicro-wrk  the same Go Micro server / wrk -s bench/greeter.lua
#   grpc         gRPC C++ callback server / gRPC C++ callback client
#   cmicro-grpc  greeter-proto-server --server=grpc / bench_greeter --client
#                grpc (the same protobuf request over gRPC and HTTP/2 as the
#                grpc row, cmicro at both ends)
#   cmicro-grpc-async  the same with bench_greeter --async
#   nginx-wrk    nginx returning the fixed reply body / wrk, same script
# The unary rows before and after the I/O-core redesign (issue 10): the
# cmicro contenders again, built from BEFORE_REV (default 4741dc4, the last
# commit before it) into BUILD_DIR-before-REV from `git archive`:
#   cmicro-before, cmicro-async-before, cmicro-wrk-before
# Streaming contenders (Greeter.Stream, bidirectional: each {"name":N} is
# answered with {"msg":"Hello N"}; S streams from one client, each with the
# pipe kept full by a sender while a receiver counts replies; messages/s):
#   grpc-stream     bench_grpc_server / bench_grpc_stream_client (one channel)
#   gomicro-stream  bench/go/server / bench/go/streamclient (a connection
#                   per stream, Go Micro's way)
#   cmicro-stream   greeter-server / bench_stream (bench/stream.c: a sender
#                   and a receiver thread per stream, the blocking API)
#   grpc-h2load     gRPC over HTTP/2: h2load against greeter-proto-server
#                   --server=grpc and bench_grpc_server, the same unary
#                   request, 64 streams over 1 and 4 connections
#                   (bench/h2load.sh; its own table)
#   cmicro-stream-async  greeter-server / bench_stream --async 128 (ONE loop
#                   thread drives every stream with the asynchronous API,
#                   128 messages in flight per stream)
#   cmicro-grpc-stream, cmicro-grpc-stream-async  the same two over gRPC:
#                   greeter-proto-server --server=grpc / bench_stream
#                   --client grpc, protobuf (the grpc-stream messages)
# Servers are pinned to SERVER_CPU, load generators to CLIENT_CPU, all on
# 127.0.0.1. Per server: calls/s, p50/p99/p99.9, server CPU per call
# (utime+stime from /proc/PID/stat), RSS at rest and under load, memory per
# idle connection (IDLE_CONNS connections held open), exec -> first
# accepted connection, binary size.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
FAST=${FAST:-0}
if [ "$FAST" = 1 ]; then
    RUNS=${RUNS:-1}
    DURATION=${DURATION:-1}
    IDLE_CONNS=${IDLE_CONNS:-2000}
fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5}
INFLIGHTS=${INFLIGHTS:-"1 16 64 256"}
SIZES=${SIZES:-"0 1024"}
BIG_INFLIGHT=${BIG_INFLIGHT:-64}
IDLE_CONNS=${IDLE_CONNS:-10000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
STREAMS=${STREAMS:-"1 64"}
STREAM_SIZES=${STREAM_SIZES:-"64 1024"}
CONTENDERS=${CONTENDERS:-"echo cmicro cmicro-async cmicro-pool cmicro-wrk cmicro-proto cmicro-proto-wrk gomicro gomicro-wrk grpc cmicro-grpc cmicro-grpc-async nginx-wrk grpc-stream gomicro-stream cmicro-stream cmicro-stream-async cmicro-grpc-stream cmicro-grpc-stream-async grpc-h2load cmicro-before cmicro-async-before cmicro-wrk-before"}
WRITE_DOCS=0
for a in "$@"; do
    case $a in
    --write-docs) WRITE_DOCS=1 ;;
    *) echo "usage: $0 [--write-docs]" >&2; exit 2 ;;
    esac
done
export PATH="$PATH:/usr/local/go/bin"

log() { echo "[bench] $*" >&2; }
has() { case " $CONTENDERS " in *" $1 "*) return 0 ;; esac; return 1; }
is_stream() { case $1 in *-stream|*-stream-async) return 0 ;; esac; return 1; }

# Room for IDLE_CONNS connections on both ends (servers inherit it).
ulimit -n $((IDLE_CONNS * 2 + 1024)) 2>/dev/null ||
    log "cannot raise the open-file limit; idle-connection figures may fail"

# --- build ---------------------------------------------------------------
NOTES=()
if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
        -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DMICRO_WERROR=ON \
        -DMICRO_BUILD_TESTS=OFF >&2
fi
targets=(greeter-server greeter-proto-server bench_echo bench_greeter
    bench_floor_empty bench_floor_deps)
if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^bench_grpc_server:'; then
    targets+=(bench_grpc_server bench_grpc_client)
fi
if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^bench_grpc_stream_client:'; then
    targets+=(bench_grpc_stream_client)
fi
# bench/stream.c joins CMake once the library has the stream API.
if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^bench_stream:'; then
    targets+=(bench_stream)
fi
ninja -C "$BUILD" "${targets[@]}" >&2

# The pre-redesign build, for the before/after rows.
BEFORE_REV=${BEFORE_REV:-4741dc4}
BUILD_BEFORE=$BUILD-before-$BEFORE_REV
if has cmicro-before || has cmicro-async-before || has cmicro-wrk-before; then
    if [ ! -x "$BUILD_BEFORE/greeter-server" ]; then
        src=$(mktemp -d /tmp/cmicro-before.XXXXXX)
        if git -C "$ROOT" archive "$BEFORE_REV" | tar -x -C "$src" &&
            cmake -S "$src" -B "$BUILD_BEFORE" -G Ninja \
                -DCMAKE_BUILD_TYPE=Release \
                -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
                -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
                -DMICRO_BUILD_TESTS=OFF >&2 &&
            ninja -C "$BUILD_BEFORE" greeter-server bench_greeter >&2; then
            :
        else
            log "cannot build $BEFORE_REV for the before rows"
        fi
        rm -rf "$src"
    fi
fi
SERVER_BEFORE=$BUILD_BEFORE/greeter-server
GREETER_BEFORE=$BUILD_BEFORE/bench/bench_greeter

SERVER=$BUILD/greeter-server
PROTO_SERVER=$BUILD/greeter-proto-server
ECHO=$BUILD/bench/bench_echo
GREETER=$BUILD/bench/bench_greeter
GRPC_SERVER=$BUILD/bench/bench_grpc_server
GRPC_CLIENT=$BUILD/bench/bench_grpc_client
GRPC_STREAM_CLIENT=$BUILD/bench/bench_grpc_stream_client
GO_SERVER=$BUILD/bench/go/server
GO_CLIENT=$BUILD/bench/go/client
GO_STREAM_CLIENT=$BUILD/bench/go/streamclient
CMICRO_STREAM=$BUILD/bench/bench_stream
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
LIB=$(readlink -f "$BUILD/libcmicro.so")

drop() { # contender... reason
    local reason=${*: -1} c
    for c in "${@:1:$#-1}"; do
        if has "$c"; then
            CONTENDERS=$(echo " $CONTENDERS " | sed "s/ $c / /")
            NOTES+=("$c: skipped ($reason)")
            log "$c: skipped ($reason)"
        fi
    done
}
if [ ! -x "$GRPC_SERVER" ]; then
    drop grpc grpc-stream "not built: MICRO_BENCH_GRPC is OFF (libgrpc++-dev missing?)"
elif [ ! -x "$GRPC_STREAM_CLIENT" ]; then
    drop grpc-stream "$GRPC_STREAM_CLIENT is not built"
fi
if has gomicro || has gomicro-wrk || has gomicro-stream; then
    if ! command -v go >/dev/null; then
        drop gomicro gomicro-wrk gomicro-stream "no Go toolchain"
    elif ! (cd "$ROOT/bench/go" && go build -o "$BUILD/bench/go/" \
        ./server ./client ./streamclient) >&2; then
        drop gomicro gomicro-wrk gomicro-stream "go build failed"
    fi
fi
if [ ! -x "$CMICRO_STREAM" ]; then
    drop cmicro-stream cmicro-stream-async "$CMICRO_STREAM is not built"
fi
if [ ! -x "$SERVER_BEFORE" ] || [ ! -x "$GREETER_BEFORE" ]; then
    drop cmicro-before cmicro-async-before cmicro-wrk-before \
        "the $BEFORE_REV build is missing"
fi
if ! command -v wrk >/dev/null; then
    drop cmicro-wrk cmicro-proto-wrk gomicro-wrk nginx-wrk cmicro-wrk-before \
        "wrk is not installed"
fi
if [ ! -x "$NGINX" ]; then
    drop nginx-wrk "nginx is not installed"
fi

TMP=$(mktemp -d /tmp/cmicro-bench.XXXXXX)
RESULTS=$TMP/results.tsv # contender size K run json cpu_us rss_max_kb
STREAM_RESULTS=$TMP/streams.tsv # contender size S run json cpu_us_per_msg rss_max_kb
: >"$STREAM_RESULTS"
FOOT=$TMP/foot.tsv       # server metric value
: >"$RESULTS"
: >"$FOOT"
SRV_PID=""
CLK_TCK=$(getconf CLK_TCK)

stop_server() {
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=""
    fi
}
cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait (up to 10 s) until 127.0.0.1:$1 accepts a connection.
wait_port() {
    local i
    for i in $(seq 1 1000); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.01
    done
    echo "server on port $1 did not come up: $(tail -3 "$TMP/server.log")" >&2
    return 1
}

# The reply body the greeter gives for a name of SIZE bytes.
reply_body() {
    if [ "$1" = 0 ]; then
        printf '{"msg":"Hello John"}'
    else
        printf '{"msg":"Hello %s"}' "$(head -c "$1" /dev/zero | tr '\0' x)"
    fi
}

# nginx answering the fixed reply: one process, loopback, its own port.
nginx_conf() { # port size -> path of the config
    local dir=$TMP/nginx-$1
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
user root;
error_log $dir/logs/error.log error;
pid $dir/nginx.pid;
events { worker_connections $((IDLE_CONNS + 1024)); }
http {
    access_log off;
    client_body_temp_path $dir/body;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            default_type application/json;
            return 200 '$(reply_body "$2")';
        }
    }
}
EOF
    echo "$dir"
}

# server_cmd KIND PORT SIZE: the command line of a server (no taskset).
server_cmd() {
    case $1 in
    echo) echo "$ECHO server $2" ;;
    cmicro) echo "$SERVER --server_address=127.0.0.1:$2 --registry=memory" ;;
    cmicro-pool) echo "$SERVER --server_address=127.0.0.1:$2 --registry=memory --no_inline" ;;
    cmicro-before) echo "$SERVER_BEFORE --server_address=127.0.0.1:$2 --registry=memory" ;;
    cmicro-proto) echo "$PROTO_SERVER --server_address=127.0.0.1:$2 --registry=memory" ;;
    cmicro-grpc) echo "$PROTO_SERVER --server=grpc --server_address=127.0.0.1:$2 --registry=memory" ;;
    gomicro) echo "$GO_SERVER --server_address=127.0.0.1:$2 --registry=memory" ;;
    grpc) echo "$GRPC_SERVER 127.0.0.1:$2" ;;
    nginx)
        local d
        d=$(nginx_conf "$2" "$3")
        echo "$NGINX -p $d -c $d/nginx.conf"
        ;;
    esac
}

start_server() { # kind port size; sets SRV_PID
    local cmd
    cmd=$(server_cmd "$1" "$2" "$3")
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" $cmd >"$TMP/server.log" 2>&1 &
    SRV_PID=$!
    wait_port "$2"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Memory that is the process's alone (USS): private pages, clean or dirty;
# shared library pages other processes also map are not counted.
uss_kb() { awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now_s() { date +%s.%N; }

# Largest VmRSS of pid $1 seen while pid $2 runs.
sample_rss() {
    local pid=$1 watch=$2 max=0 v
    while kill -0 "$watch" 2>/dev/null; do
        v=$(rss_kb "$pid" 2>/dev/null || echo 0)
        [ "${v:-0}" -gt "$max" ] && max=$v
        sleep 0.2
    done
    echo "$max"
}

# Run a load generator pinned to the client core; its last JSON line is
# the result. Records server CPU per call and the server's peak RSS.
run_client() { # contender size K run cmd...
    local c=$1 s=$2 k=$3 r=$4
    shift 4
    local t0 w0 t1 w1 rss line cpu
    t0=$(cpu_ticks "$SRV_PID")
    w0=$(now_s)
    taskset -c "$CLIENT_CPU" "$@" >"$TMP/client.out" 2>"$TMP/client.err" &
    local cpid=$!
    rss=$(sample_rss "$SRV_PID" "$cpid")
    if ! wait "$cpid"; then
        log "$c size=$s inflight=$k failed: $(tail -2 "$TMP/client.err")"
    fi
    t1=$(cpu_ticks "$SRV_PID")
    w1=$(now_s)
    line=$(grep -o '{"calls_per_s".*}' "$TMP/client.out" | tail -1 || true)
    if [ -z "$line" ]; then
        line='{"calls_per_s":0,"errors":1}'
        log "$c: no result: $(tail -2 "$TMP/client.err")"
    fi
    # Server CPU µs per call: CPU share over the client's life / calls/s.
    cpu=$(python3 -c 'import json,sys
j=json.loads(sys.argv[1]); t=float(sys.argv[2])/float(sys.argv[3])
w=float(sys.argv[5])-float(sys.argv[4]); c=j.get("calls_per_s",0)
print("%.2f" % (t/w/c*1e6) if c and w > 0 else "nan")' \
        "$line" "$((t1 - t0))" "$CLK_TCK" "$w0" "$w1")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$s" "$k" "$r" "$line" \
        "$cpu" "$rss" >>"$RESULTS"
    log "$c size=$s inflight=$k run=$r: $line cpu=${cpu}us/call rss=${rss}KiB"
}

# The same for a streaming load generator: its '{"msgs_per_s"...}' line,
# server CPU per message, the server's peak RSS; into STREAM_RESULTS.
run_stream_client() { # contender size S run cmd...
    local c=$1 s=$2 k=$3 r=$4
    shift 4
    local t0 w0 t1 w1 rss line cpu
    t0=$(cpu_ticks "$SRV_PID")
    w0=$(now_s)
    taskset -c "$CLIENT_CPU" timeout 120 "$@" >"$TMP/client.out" 2>"$TMP/client.err" &
    local cpid=$!
    rss=$(sample_rss "$SRV_PID" "$cpid")
    if ! wait "$cpid"; then
        log "$c size=$s streams=$k failed: $(tail -2 "$TMP/client.err")"
    fi
    t1=$(cpu_ticks "$SRV_PID")
    w1=$(now_s)
    line=$(grep -o '{"msgs_per_s".*}' "$TMP/client.out" | tail -1 || true)
    if [ -z "$line" ]; then
        line='{"msgs_per_s":0,"errors":1}'
        log "$c: no result: $(tail -2 "$TMP/client.err")"
    fi
    cpu=$(python3 -c 'import json,sys
j=json.loads(sys.argv[1]); t=float(sys.argv[2])/float(sys.argv[3])
w=float(sys.argv[5])-float(sys.argv[4]); c=j.get("msgs_per_s",0)
print("%.2f" % (t/w/c*1e6) if c and w > 0 else "nan")' \
        "$line" "$((t1 - t0))" "$CLK_TCK" "$w0" "$w1")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$s" "$k" "$r" "$line" \
        "$cpu" "$rss" >>"$STREAM_RESULTS"
    log "$c size=$s streams=$k run=$r: $line cpu=${cpu}us/msg rss=${rss}KiB"
}

client_cmd() { # client port size K -> argv on stdout, one per line
    case $1 in
    echo)
        # The same bytes each way as cmicro's HTTP request.
        local n=286
        [ "$3" != 0 ] && n=$((286 + $3 + 24))
        printf '%s\n' "$ECHO" client "127.0.0.1:$2" --inflight "$4" \
            --duration "$DURATION" --warmup "$WARMUP" --size "$n"
        ;;
    cmicro)
        printf '%s\n' "$GREETER" --address "127.0.0.1:$2" --inflight "$4" \
            --duration "$DURATION" --warmup "$WARMUP" --size "$3"
        ;;
    cmicro-before)
        printf '%s\n' "$GREETER_BEFORE" --address "127.0.0.1:$2" \
            --inflight "$4" --duration "$DURATION" --warmup "$WARMUP" \
            --size "$3"
        ;;
    cmicro-async-before)
        printf '%s\n' "$GREETER_BEFORE" --address "127.0.0.1:$2" \
            --inflight "$4" --duration "$DURATION" --warmup "$WARMUP" \
            --size "$3" --async
        ;;
    cmicro-async)
        printf '%s\n' "$GREETER" --address "127.0.0.1:$2" --inflight "$4" \
            --duration "$DURATION" --warmup "$WARMUP" --size "$3" --async
        ;;
    cmicro-proto)
        printf '%s\n' "$GREETER" --address "127.0.0.1:$2" --inflight "$4" \
            --duration "$DURATION" --warmup "$WARMUP" --size "$3" \
            --content_type application/protobuf
        ;;
    cmicro-grpc)
        printf '%s\n' "$GREETER" --address "127.0.0.1:$2" --inflight "$4" \
            --duration "$DURATION" --warmup "$WARMUP" --size "$3" \
            --content_type application/protobuf --client grpc
        ;;
    cmicro-grpc-async)
        printf '%s\n' "$GREETER" --address "127.0.0.1:$2" --inflight "$4" \
            --duration "$DURATION" --warmup "$WARMUP" --size "$3" \
            --content_type application/protobuf --client grpc --async
        ;;
    cmicro-grpc-stream)
        printf '%s\n' "$CMICRO_STREAM" --address "127.0.0.1:$2" \
            --streams "$4" --duration "$DURATION" --warmup "$WARMUP" \
            --size "$3" --content_type application/protobuf --client grpc
        ;;
    cmicro-grpc-stream-async)
        printf '%s\n' "$CMICRO_STREAM" --address "127.0.0.1:$2" \
            --streams "$4" --duration "$DURATION" --warmup "$WARMUP" \
            --size "$3" --content_type application/protobuf --client grpc \
            --async 128
        ;;
    gomicro)
        printf '%s\n' "$GO_CLIENT" -address "127.0.0.1:$2" -inflight "$4" \
            -duration "$DURATION" -warmup "$WARMUP" -size "$3"
        ;;
    grpc)
        printf '%s\n' "$GRPC_CLIENT" --address "127.0.0.1:$2" --inflight "$4" \
            --duration "$DURATION" --warmup "$WARMUP" --size "$3"
        ;;
    grpc-stream)
        printf '%s\n' "$GRPC_STREAM_CLIENT" --address "127.0.0.1:$2" \
            --streams "$4" --duration "$DURATION" --warmup "$WARMUP" --size "$3"
        ;;
    gomicro-stream)
        printf '%s\n' "$GO_STREAM_CLIENT" -address "127.0.0.1:$2" \
            -streams "$4" -duration "$DURATION" -warmup "$WARMUP" -size "$3"
        ;;
    cmicro-stream)
        printf '%s\n' "$CMICRO_STREAM" --address "127.0.0.1:$2" \
            --streams "$4" --duration "$DURATION" --warmup "$WARMUP" --size "$3"
        ;;
    cmicro-stream-async)
        printf '%s\n' "$CMICRO_STREAM" --address "127.0.0.1:$2" \
            --streams "$4" --duration "$DURATION" --warmup "$WARMUP" \
            --size "$3" --async 128
        ;;
    wrk | wrk-proto)
        local codec=json
        [ "$1" = wrk-proto ] && codec=protobuf
        printf '%s\n' env "BENCH_SIZE=$3" "BENCH_CODEC=$codec" wrk -t1 -c"$4" -d"${DURATION}s" \
            -s "$ROOT/bench/greeter.lua" "http://127.0.0.1:$2/"
        ;;
    esac
}

# contender -> "server client"
pair() {
    case $1 in
    echo) echo "echo echo" ;;
    cmicro) echo "cmicro cmicro" ;;
    cmicro-async) echo "cmicro cmicro-async" ;;
    cmicro-pool) echo "cmicro-pool cmicro" ;;
    cmicro-wrk) echo "cmicro wrk" ;;
    cmicro-before) echo "cmicro-before cmicro-before" ;;
    cmicro-async-before) echo "cmicro-before cmicro-async-before" ;;
    cmicro-wrk-before) echo "cmicro-before wrk" ;;
    cmicro-proto) echo "cmicro-proto cmicro-proto" ;;
    cmicro-proto-wrk) echo "cmicro-proto wrk-proto" ;;
    gomicro) echo "gomicro gomicro" ;;
    gomicro-wrk) echo "gomicro wrk" ;;
    grpc) echo "grpc grpc" ;;
    cmicro-grpc) echo "cmicro-grpc cmicro-grpc" ;;
    cmicro-grpc-async) echo "cmicro-grpc cmicro-grpc-async" ;;
    cmicro-grpc-stream) echo "cmicro-grpc cmicro-grpc-stream" ;;
    cmicro-grpc-stream-async) echo "cmicro-grpc cmicro-grpc-stream-async" ;;
    nginx-wrk) echo "nginx wrk" ;;
    grpc-stream) echo "grpc grpc-stream" ;;
    gomicro-stream) echo "gomicro gomicro-stream" ;;
    cmicro-stream) echo "cmicro cmicro-stream" ;;
    cmicro-stream-async) echo "cmicro cmicro-stream-async" ;;
    grpc-h2load) echo "h2load h2load" ;; # bench/h2load.sh, measured apart
    esac
}

# One round: each server once per payload size, every client against it.
round() { # run
    local r=$1 s srv c port ks k
    for s in $SIZES; do
        for srv in echo cmicro cmicro-before cmicro-pool cmicro-proto gomicro \
            grpc cmicro-grpc nginx; do
            local cs=()
            for c in $CONTENDERS; do
                is_stream "$c" && continue
                set -- $(pair "$c")
                [ "$1" = "$srv" ] && cs+=("$c")
            done
            [ ${#cs[@]} -eq 0 ] && continue
            port=$(free_port)
            start_server "$srv" "$port" "$s"
            sleep 0.3
            if [ "$s" = 0 ]; then
                printf '%s\trss_rest\t%s\n' "$srv" "$(rss_kb "$SRV_PID")" >>"$FOOT"
                printf '%s\tuss_rest\t%s\n' "$srv" "$(uss_kb "$SRV_PID")" >>"$FOOT"
            fi
            for c in "${cs[@]}"; do
                ks=$INFLIGHTS
                [ "$s" != 0 ] && ks=$BIG_INFLIGHT
                case $c in cmicro-pool | cmicro-proto*) ks=$BIG_INFLIGHT ;; esac
                for k in $ks; do
                    set -- $(pair "$c")
                    mapfile -t argv < <(client_cmd "$2" "$port" "$s" "$k")
                    run_client "$c" "$s" "$k" "$r" "${argv[@]}"
                done
            done
            stop_server
        done
    done
}

# One streaming round: each server once per request size, every streaming
# client against it at each of STREAMS.
stream_round() { # run
    local r=$1 s srv c port k
    for s in $STREAM_SIZES; do
        for srv in cmicro gomicro grpc cmicro-grpc; do
            local cs=()
            for c in $CONTENDERS; do
                is_stream "$c" || continue
                set -- $(pair "$c")
                [ "$1" = "$srv" ] && cs+=("$c")
            done
            [ ${#cs[@]} -eq 0 ] && continue
            port=$(free_port)
            start_server "$srv" "$port" 0
            sleep 0.3
            for c in "${cs[@]}"; do
                for k in $STREAMS; do
                    mapfile -t argv < <(client_cmd "$c" "$port" "$s" "$k")
                    run_stream_client "$c" "$s" "$k" "$r" "${argv[@]}"
                done
            done
            stop_server
        done
    done
}

# Memory per idle connection: RSS growth of a fresh server while N
# connections that sent nothing are held open, divided by N.
idle_conns() { # kind
    local port
    port=$(free_port)
    start_server "$1" "$port" 0
    sleep 0.3
    local v
    v=$(taskset -c "$CLIENT_CPU" python3 - "$SRV_PID" "$port" "$IDLE_CONNS" <<'EOF'
import socket, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
r0 = rss()
socks = []
try:
    for i in range(n):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        socks.append(s)
except OSError as e:
    print("nan nan %d" % len(socks))
    sys.exit(0)
time.sleep(1.5)
r1 = rss()
print("%.0f %d %d" % ((r1 - r0) * 1024.0 / n, r1, n))
EOF
)
    stop_server
    set -- $v
    echo "$1"
}

# Time from exec to the first accepted connection, in ms (connect polled
# every 0.5 ms).
startup_ms() { # kind
    local port cmd
    port=$(free_port)
    cmd=$(server_cmd "$1" "$port" 0)
    python3 - "$port" "$SERVER_CPU" $cmd <<'EOF'
import socket, subprocess, sys, time
port, cpu, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
p = subprocess.Popen(["taskset", "-c", cpu] + argv,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        break
    except OSError:
        time.sleep(0.0005)
    finally:
        s.close()
print("%.1f" % ((time.monotonic() - t0) * 1000))
p.terminate()
p.wait()
EOF
}

# Servers that take part in this run (for the footprint table).
servers_in_run() {
    local srv c
    for srv in echo cmicro cmicro-before cmicro-pool cmicro-proto gomicro \
        grpc cmicro-grpc nginx; do
        for c in $CONTENDERS; do
            is_stream "$c" && continue
            set -- $(pair "$c")
            if [ "$1" = "$srv" ]; then
                echo "$srv"
                break
            fi
        done
    done
}

# --- measure -------------------------------------------------------------
if has grpc-h2load && command -v h2load >/dev/null; then
    log "gRPC over HTTP/2 (bench/h2load.sh)"
    BUILD_DIR=$BUILD RUNS=$RUNS SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU \
        "$ROOT/bench/h2load.sh" >"$TMP/h2load.md" ||
        log "bench/h2load.sh failed; no gRPC table"
fi
for r in $(seq 1 "$RUNS"); do
    log "run $r/$RUNS"
    round "$r"
    stream_round "$r"
done
for srv in $(servers_in_run); do
    for r in $(seq 1 "$RUNS"); do
        printf '%s\tidle_conn_b\t%s\n' "$srv" "$(idle_conns "$srv")" >>"$FOOT"
        for i in 1 2 3; do
            printf '%s\tstartup_ms\t%s\n' "$srv" "$(startup_ms "$srv")" >>"$FOOT"
        done
    done
    log "$srv: footprint measured"
done
# The floor under the dependencies: resident memory of an empty C program
# and of one that only loads cmicro's libraries (bench/floor/).
floor_rss() { # kind binary
    "$2" >"$TMP/floor.out" 2>&1 &
    local pid=$! i
    for i in $(seq 1 500); do
        grep -q 'listening on' "$TMP/floor.out" && break
        sleep 0.01
    done
    sleep 0.3
    printf '%s\trss_rest\t%s\n' "$1" "$(rss_kb "$pid")" >>"$FOOT"
    printf '%s\tuss_rest\t%s\n' "$1" "$(uss_kb "$pid")" >>"$FOOT"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
for r in $(seq 1 "$RUNS"); do
    floor_rss floor-empty "$BUILD/bench/bench_floor_empty"
    floor_rss floor-deps "$BUILD/bench/bench_floor_deps"
done
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
strip_size() { strip -o "$TMP/stripped" "$1" 2>/dev/null && size_of "$TMP/stripped" || echo 0; }
{
    printf 'cmicro\tbin\t%s %s\n' "$(size_of "$SERVER")" "$(strip_size "$SERVER")"
    printf 'cmicro\tlib\t%s %s\n' "$(size_of "$LIB")" "$(strip_size "$LIB")"
    printf 'cmicro-proto\tbin\t%s %s\n' "$(size_of "$PROTO_SERVER")" "$(strip_size "$PROTO_SERVER")"
    printf 'cmicro-grpc\tbin\t%s %s\n' "$(size_of "$PROTO_SERVER")" "$(strip_size "$PROTO_SERVER")"
    [ -x "$GO_SERVER" ] && printf 'gomicro\tbin\t%s %s\n' "$(size_of "$GO_SERVER")" "$(strip_size "$GO_SERVER")"
    [ -x "$GRPC_SERVER" ] && printf 'grpc\tbin\t%s %s\n' "$(size_of "$GRPC_SERVER")" "$(strip_size "$GRPC_SERVER")"
    [ -x "$NGINX" ] && printf 'nginx\tbin\t%s %s\n' "$(size_of "$NGINX")" "$(size_of "$NGINX")"
    printf 'echo\tbin\t%s %s\n' "$(size_of "$ECHO")" "$(strip_size "$ECHO")"
} >>"$FOOT"

# --- report --------------------------------------------------------------
CPU_MODEL=$(lscpu | grep 'Model name' | sed 's/.*: *//' | head -1)
MACHINE="$(nproc) CPUs, ${CPU_MODEL}, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
VERSIONS="gcc $(gcc -dumpversion), libuv $(pkg-config --modversion libuv), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), $(go version 2>/dev/null | awk '{print $3}') with go-micro.dev/v4 v4.11.0, grpc++ $(pkg-config --modversion grpc++ 2>/dev/null || echo -), $("$NGINX" -v 2>&1 | sed 's/.*: //')"
DOCS=$ROOT/docs
CHART=$TMP/bench.png
python3 "$ROOT/bench/report.py" "$RESULTS" "$FOOT" "$TMP/chart.tsv" \
    "$STREAM_RESULTS" >"$TMP/tables.md"
if [ ! -s "$RESULTS" ]; then
    : # no unary rows: no chart
elif command -v gnuplot >/dev/null; then
    gnuplot -e "data='$TMP/chart.tsv'; out='$CHART'" "$ROOT/bench/chart.gp" ||
        log "gnuplot failed; no chart"
else
    log "gnuplot is not installed; no chart"
fi

{
    echo "Machine: $MACHINE."
    echo "Software: $VERSIONS."
    echo "Settings: RUNS=$RUNS DURATION=${DURATION}s WARMUP=${WARMUP}s" \
        "IDLE_CONNS=$IDLE_CONNS STREAMS=\"$STREAMS\" STREAM_SIZES=\"$STREAM_SIZES\";" \
        "servers on CPU $SERVER_CPU, load" \
        "generators on CPU $CLIENT_CPU; medians of $RUNS runs."
    echo "Command: \`RUNS=$RUNS DURATION=$DURATION bench/run.sh --write-docs\`."
    echo
    for n in "${NOTES[@]}"; do
        echo "- $n"
    done
    [ ${#NOTES[@]} -gt 0 ] && echo
    cat "$TMP/tables.md"
    if [ -s "$TMP/h2load.md" ]; then
        echo
        echo "### gRPC over HTTP/2: h2load, unary, 64 streams (bench/h2load.sh)"
        echo
        cat "$TMP/h2load.md"
    fi
} >"$TMP/section.md"
cat "$TMP/section.md"

if [ "$WRITE_DOCS" = 1 ]; then
    DOC=$DOCS/benchmarks.md
    BEGIN='<!-- bench/run.sh results: begin -->'
    END='<!-- bench/run.sh results: end -->'
    if [ ! -f "$DOC" ] || ! grep -q "$BEGIN" "$DOC"; then
        mkdir -p "$DOCS"
        printf '# Benchmarks\n\n## Results\n\n%s\n%s\n' "$BEGIN" "$END" >>"$DOC"
    fi
    python3 - "$DOC" "$TMP/section.md" "$BEGIN" "$END" <<'EOF'
import sys
doc, sec, b, e = sys.argv[1:]
s = open(doc).read()
i, j = s.index(b) + len(b), s.index(e)
open(doc, "w").write(s[:i] + "\n" + open(sec).read() + s[j:])
EOF
    [ -f "$CHART" ] && cp "$CHART" "$DOCS/bench.png"
    log "wrote results into $DOC and $DOCS/bench.png"
fi
