#!/usr/bin/env bash
# cmicro benchmark suite: one command, prints a Markdown report.
#
#   bench/run.sh [--write-docs]
#
# Environment: RUNS (3) repetitions of every measurement (the report shows
# medians), DURATION (3) seconds per measurement, WRK_DURATION (5) seconds
# per wrk run, BUILD_DIR (build-bench), SERVER_CPU (0), CLIENT_CPU (1).
#
# Builds greeter-server, bench_echo and bench_greeter (Release, -O2) into
# BUILD_DIR if needed, then for every run, interleaved so that the ratios
# compare measurements taken under the same machine load:
#   echo          bench_echo server / client (one epoll loop), the baseline
#   echo-threads  bench_echo client --mode threads (K blocking threads)
#   cmicro        greeter-server --no_inline / bench_greeter (K threads,
#                 one client; handlers on the worker pool)
#   cmicro-inline greeter-server / bench_greeter (Greeter.Hello is an
#                 inline handler: it runs on the loop thread)
#   wrk           wrk -t1 -c64 against both servers (if wrk is installed)
# for inflight 1 and 64; servers are pinned to SERVER_CPU, clients to
# CLIENT_CPU. Also: greeter-server RSS at rest and under load, time from
# exec to accepting connections, binary sizes. --write-docs replaces the
# generated section of docs/benchmarks.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-3}
WRK_DURATION=${WRK_DURATION:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
INFLIGHTS=${INFLIGHTS:-"1 64"}
WRITE_DOCS=0
for a in "$@"; do
    case $a in
    --write-docs) WRITE_DOCS=1 ;;
    *) echo "usage: $0 [--write-docs]" >&2; exit 2 ;;
    esac
done

log() { echo "[bench] $*" >&2; }

# --- build ---------------------------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DMICRO_WERROR=ON \
        -DMICRO_BUILD_TESTS=OFF >&2
fi
ninja -C "$BUILD" greeter-server bench_echo bench_greeter >&2

SERVER=$BUILD/greeter-server
ECHO=$BUILD/bench/bench_echo
GREETER=$BUILD/bench/bench_greeter
LIB=$(readlink -f "$BUILD/libcmicro.so")

TMP=$(mktemp -d /tmp/cmicro-bench.XXXXXX)
RESULTS=$TMP/results.tsv
: >"$RESULTS"
SRV_PID=""

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

# Wait (up to 5 s) until 127.0.0.1:$1 accepts a connection.
wait_port() {
    local i
    for i in $(seq 1 500); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.01
    done
    echo "server on port $1 did not come up" >&2
    return 1
}

# start_server KIND PORT [args...]; KIND greeter or echo. Sets SRV_PID.
start_server() {
    local kind=$1 port=$2
    shift 2
    if [ "$kind" = echo ]; then
        taskset -c "$SERVER_CPU" "$ECHO" server "$port" >"$TMP/server.log" 2>&1 &
    else
        taskset -c "$SERVER_CPU" "$SERVER" --server_address="127.0.0.1:$port" \
            --registry=memory "$@" >"$TMP/server.log" 2>&1 &
    fi
    SRV_PID=$!
    wait_port "$port"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

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

record() { # contender inflight run json
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
    log "$1 inflight=$2 run=$3: $4"
}

# Run a client command pinned to the client core; its last JSON line is
# the result. Also samples the server's RSS when asked.
run_client() { # contender inflight run sample_rss cmd...
    local c=$1 k=$2 r=$3 sample=$4
    shift 4
    taskset -c "$CLIENT_CPU" "$@" >"$TMP/client.out" 2>"$TMP/client.err" &
    local cpid=$!
    if [ "$sample" = 1 ]; then
        sample_rss "$SRV_PID" "$cpid" >>"$TMP/rss_load"
    fi
    if ! wait "$cpid"; then
        log "$c inflight=$k failed: $(cat "$TMP/client.err")"
    fi
    local line
    line=$(grep -o '{"calls_per_s".*}' "$TMP/client.out" | tail -1 || true)
    if [ -z "$line" ]; then
        line='{"calls_per_s":0,"errors":1}'
    fi
    record "$c" "$k" "$r" "$line"
}

greeter_round() { # contender run [server args]
    local c=$1 r=$2 port
    shift 2
    port=$(free_port)
    start_server greeter "$port" "$@"
    if [ "$c" = cmicro ]; then
        sleep 0.2
        rss_kb "$SRV_PID" >>"$TMP/rss_rest"
    fi
    for k in $INFLIGHTS; do
        local sample=0
        [ "$c" = cmicro ] && [ "$k" -gt 1 ] && sample=1
        run_client "$c" "$k" "$r" "$sample" "$GREETER" \
            --address "127.0.0.1:$port" --inflight "$k" \
            --duration "$DURATION"
    done
    if command -v wrk >/dev/null; then
        local name=wrk
        [ "$c" = cmicro-inline ] && name=wrk-inline
        run_client "$name" 64 "$r" 0 wrk -t1 -c64 -d"${WRK_DURATION}s" \
            -s "$ROOT/bench/greeter.lua" "http://127.0.0.1:$port/"
    fi
    stop_server
}

echo_round() { # run
    local r=$1 port
    port=$(free_port)
    start_server echo "$port"
    for k in $INFLIGHTS; do
        run_client echo "$k" "$r" 0 "$ECHO" client "127.0.0.1:$port" \
            --inflight "$k" --duration "$DURATION"
        run_client echo-threads "$k" "$r" 0 "$ECHO" client \
            "127.0.0.1:$port" --inflight "$k" --duration "$DURATION" \
            --mode threads
    done
    stop_server
}

# Time from exec to the first accepted connection, in ms (connect polled
# every 1 ms).
startup_ms() {
    local port
    port=$(free_port)
    python3 - "$SERVER" "$port" "$SERVER_CPU" <<'EOF'
import socket, subprocess, sys, time
srv, port, cpu = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.monotonic()
p = subprocess.Popen(["taskset", "-c", cpu, srv,
                      "--server_address=127.0.0.1:%d" % port,
                      "--registry=memory"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        break
    except OSError:
        time.sleep(0.001)
    finally:
        s.close()
print("%.1f" % ((time.monotonic() - t0) * 1000))
p.terminate()
p.wait()
EOF
}

# --- measure -------------------------------------------------------------
for r in $(seq 1 "$RUNS"); do
    log "run $r/$RUNS"
    echo_round "$r"
    greeter_round cmicro "$r" --no_inline
    greeter_round cmicro-inline "$r"
done
for r in $(seq 1 $((RUNS * 3))); do
    startup_ms >>"$TMP/startup"
done

# --- report --------------------------------------------------------------
SERVER_SIZE=$(stat -c %s "$SERVER")
LIB_SIZE=$(stat -c %s "$LIB")
strip -o "$TMP/s1" "$SERVER"
strip -o "$TMP/s2" "$LIB"
SERVER_STRIP=$(stat -c %s "$TMP/s1")
LIB_STRIP=$(stat -c %s "$TMP/s2")
CPU_MODEL=$(lscpu | grep 'Model name' | sed 's/.*: *//' | head -1)

REPORT=$TMP/report.md
python3 - "$RESULTS" "$TMP" >"$REPORT" <<EOF
import json, statistics, sys, collections
res, tmp = sys.argv[1], sys.argv[2]
runs = collections.defaultdict(dict)   # (contender, k) -> run -> result
for line in open(res):
    c, k, r, js = line.rstrip("\n").split("\t")
    runs[(c, int(k))][int(r)] = json.loads(js)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")

def nums(path):
    try:
        return [float(x) for x in open(path).read().split()]
    except OSError:
        return []

order = ["echo", "echo-threads", "cmicro", "cmicro-inline", "wrk",
         "wrk-inline"]
client = {"echo": "bench_echo (1 epoll thread)",
          "echo-threads": "bench_echo --mode threads",
          "cmicro": "bench_greeter", "cmicro-inline": "bench_greeter",
          "wrk": "wrk -t1", "wrk-inline": "wrk -t1"}
server = {"echo": "bench_echo server", "echo-threads": "bench_echo server",
          "cmicro": "greeter-server --no_inline",
          "wrk": "greeter-server --no_inline",
          "cmicro-inline": "greeter-server",
          "wrk-inline": "greeter-server"}
print("| contender | server | client | inflight | calls/s | p50 µs | p99 µs "
      "| p99.9 µs | errors | calls/s ÷ echo | p50 ÷ echo |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in order:
    for k in sorted({k for (cc, k) in runs if cc == c}):
        rr = runs[(c, k)]
        base = runs.get(("echo", k), {})
        q = lambda f: med([x.get(f) for x in rr.values()])
        # Ratios pair each run with the echo run of the same round.
        rt = med([rr[r]["calls_per_s"] / base[r]["calls_per_s"]
                  for r in rr if r in base and base[r]["calls_per_s"]])
        lt = med([rr[r]["p50_us"] / base[r]["p50_us"]
                  for r in rr if r in base and base[r].get("p50_us")])
        errs = sum(x.get("errors", 0) for x in rr.values())
        print("| %s | %s | %s | %d | %.0f | %.1f | %.1f | %.1f | %d | "
              "%.2f | %.2f |" % (c, server[c], client[c], k,
              q("calls_per_s"), q("p50_us"), q("p99_us"), q("p999_us"),
              errs, rt, lt))
print()
rest, load, st = nums(tmp + "/rss_rest"), nums(tmp + "/rss_load"), \
    nums(tmp + "/startup")
print("| greeter-server | median | runs |")
print("|---|---:|---:|")
print("| VmRSS at rest | %.0f KiB | %d |" % (med(rest), len(rest)))
print("| VmRSS under load (max while inflight=64) | %.0f KiB | %d |"
      % (med(load), len(load)))
print("| exec → first accepted connect | %.1f ms | %d |"
      % (med(st), len(st)))
print("| greeter-server binary (stripped) | %d B (%d B) | |"
      % ($SERVER_SIZE, $SERVER_STRIP))
print("| libcmicro.so (stripped) | %d B (%d B) | |"
      % ($LIB_SIZE, $LIB_STRIP))
print("| total (stripped) | %d B (%d B) | |"
      % ($SERVER_SIZE + $LIB_SIZE, $SERVER_STRIP + $LIB_STRIP))
EOF

MACHINE="$(nproc) CPUs, ${CPU_MODEL}, Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
{
    echo "Machine: $MACHINE."
    echo "Settings: RUNS=$RUNS DURATION=${DURATION}s WRK_DURATION=${WRK_DURATION}s,"
    echo "servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; medians of $RUNS runs."
    echo
    cat "$REPORT"
} >"$TMP/section.md"
cat "$TMP/section.md"

if [ "$WRITE_DOCS" = 1 ]; then
    DOC=$ROOT/docs/benchmarks.md
    BEGIN='<!-- bench/run.sh results: begin -->'
    END='<!-- bench/run.sh results: end -->'
    if [ ! -f "$DOC" ] || ! grep -q "$BEGIN" "$DOC"; then
        mkdir -p "$(dirname "$DOC")"
        printf '# Benchmarks\n\n## Results\n\n%s\n%s\n' "$BEGIN" "$END" >>"$DOC"
    fi
    python3 - "$DOC" "$TMP/section.md" "$BEGIN" "$END" <<'EOF'
import sys
doc, sec, b, e = sys.argv[1:]
s = open(doc).read()
i, j = s.index(b) + len(b), s.index(e)
open(doc, "w").write(s[:i] + "\n" + open(sec).read() + s[j:])
EOF
    log "wrote results into $DOC"
fi
