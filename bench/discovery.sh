#!/usr/bin/env bash
# Discovery side by side (docs/benchmarks.md, "Discovery"): memory, mDNS,
# etcd and Consul measured the same way by `bench_discovery side`, and
# registration churn on one etcd (and one Consul agent) from cmicro and
# from Go Micro v4's plugins (bench/go/churn), in the same run.
#
#   bench/discovery.sh [BUILD]      (root: mDNS runs in a private netns)
#
# Env: RUNS (cold runs per registry, 10), CALLS (steady calls per sample,
# 2000), CHURN_SECONDS (5), CHURN_THREADS (8), REPEAT (churn runs, 3; the
# median is reported), CONSUL_BIN (default: the binary scripts/consul.sh
# caches). etcd is Debian's etcd-server, one member, on free loopback
# ports in a temporary directory; Consul runs in -dev mode the same way.
# A registry whose server is missing is reported as skipped, with why.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
RUNS=${RUNS:-10}
CALLS=${CALLS:-2000}
CHURN_SECONDS=${CHURN_SECONDS:-5}
CHURN_THREADS=${CHURN_THREADS:-8}
REPEAT=${REPEAT:-3}
export PATH="$PATH:/usr/local/go/bin"
BENCH=$BUILD/bench/bench_discovery
[ -x "$BENCH" ] || { echo "discovery: $BENCH not built" >&2; exit 1; }
TMP=$(mktemp -d /tmp/cmicro-discovery-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # url, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

ETCD_ADDR= CONSUL_ADDR= skipped=()
if command -v etcd >/dev/null; then
  cp=$(free_port) pp=$(free_port)
  etcd --name bench --data-dir "$TMP/etcd" \
    --listen-client-urls "http://127.0.0.1:$cp" \
    --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "bench=http://127.0.0.1:$pp" >"$TMP/etcd.log" 2>&1 &
  pids+=($!)
  if wait_http "http://127.0.0.1:$cp/health" 30; then
    ETCD_ADDR=127.0.0.1:$cp
  else
    skipped+=("etcd: did not become healthy (log: $(tail -n 3 "$TMP/etcd.log"))")
  fi
else
  skipped+=("etcd: not installed (scripts/install-deps.sh installs etcd-server)")
fi

CONSUL_BIN=${CONSUL_BIN:-$HOME/.cache/cmicro/consul-1.14.8/consul}
if [ -x "$CONSUL_BIN" ]; then
  hp=$(free_port) s1=$(free_port) s2=$(free_port) s3=$(free_port)
  "$CONSUL_BIN" agent -dev -bind 127.0.0.1 -client 127.0.0.1 \
    -http-port "$hp" -dns-port -1 -grpc-port -1 -grpc-tls-port -1 \
    -serf-lan-port "$s1" \
    -serf-wan-port "$s2" -server-port "$s3" -data-dir "$TMP/consul" \
    >"$TMP/consul.log" 2>&1 &
  pids+=($!)
  ok=
  for ((i = 0; i < 300; i++)); do
    leader=$(curl -fsS "http://127.0.0.1:$hp/v1/status/leader" 2>/dev/null)
    if [ -n "$leader" ] && [ "$leader" != '""' ]; then ok=1; break; fi
    sleep 0.1
  done
  if [ -n "$ok" ]; then CONSUL_ADDR=127.0.0.1:$hp
  else skipped+=("consul: no leader within 30 s"); fi
else
  skipped+=("consul: no binary at $CONSUL_BIN (scripts/consul.sh builds it)")
fi

echo "# discovery side by side: RUNS=$RUNS CALLS=$CALLS, $(nproc) cores, $(date -u +%FT%TZ)"
rows=()
side() { # registry, address
  local out
  out=$(MICRO_REGISTRY_ADDRESS=$2 "$BENCH" side "$1" "$RUNS" "$CALLS" 2>"$TMP/side-$1.err")
  local rc=$?
  echo "$out" | grep -v '^row '
  if [ $rc -ne 0 ]; then
    echo "  $1: FAILED ($rc): $(tail -n 3 "$TMP/side-$1.err")"
  fi
  rows+=("$(echo "$out" | grep '^row ')")
}
side memory ""
side mdns ""
[ -n "$ETCD_ADDR" ] && side etcd "$ETCD_ADDR"
[ -n "$CONSUL_ADDR" ] && side consul "$CONSUL_ADDR"

# Churn: cmicro and Go Micro against the same server, alternating, REPEAT
# times; the median pairs/s of each.
GOCHURN=$BUILD/bench/go/churn
if ! (cd "$ROOT/bench/go" && go build -o "$GOCHURN" ./churn) 2>"$TMP/go.err"; then
  skipped+=("Go churn: go build failed: $(tail -n 3 "$TMP/go.err")")
  GOCHURN=
fi
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }
churn_rows=()
churn() { # registry, address
  local c=() g=() ce=0 ge=0 i line
  for ((i = 0; i < REPEAT; i++)); do
    line=$(MICRO_REGISTRY_ADDRESS=$2 "$BENCH" churn "$1" "$CHURN_SECONDS" "$CHURN_THREADS")
    c+=("$(echo "$line" | awk '{print $3}')"); ce=$((ce + $(echo "$line" | awk '{print $4+0}')))
    if [ -n "$GOCHURN" ]; then
      line=$("$GOCHURN" "$1" "$2" "$CHURN_SECONDS" "$CHURN_THREADS")
      g+=("$(echo "$line" | awk '{print $3}')"); ge=$((ge + $(echo "$line" | awk '{print $4+0}')))
    fi
  done
  local cm gm
  cm=$(printf '%s\n' "${c[@]}" | median)
  gm=$( ((${#g[@]})) && printf '%s\n' "${g[@]}" | median || echo -)
  churn_rows+=("| $1 | $cm | $gm | $(awk -v a="$cm" -v b="$gm" 'BEGIN {if (b+0 > 0) printf "%.2fx", a/b; else print "-"}') | $ce / $ge |")
}
[ -n "$ETCD_ADDR" ] && churn etcd "$ETCD_ADDR"
[ -n "$CONSUL_ADDR" ] && churn consul "$CONSUL_ADDR"

echo
echo "| registry | cold, in process (median ms) | cold, new process (median ms) | by name, warm (us/call) | by address (us/call) | select, warm cache (ns) |"
echo "|---|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
  [ -n "$r" ] || continue
  echo "$r" | awk '{
    for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "| %s | %s | %s | %s | %s | %s |\n", $2, v["cold_in_ms"],
      (v["cold_proc_ms"] < 0 ? "n/a (one process)" : v["cold_proc_ms"]),
      v["by_name_us"], v["by_addr_us"], v["select_ns"] }'
done
if ((${#churn_rows[@]})); then
  echo
  echo "Registration churn, $CHURN_THREADS threads/goroutines, ${CHURN_SECONDS} s, median of $REPEAT (register + deregister pairs per second; errors cmicro / Go):"
  echo
  echo "| registry | cmicro | Go Micro plugin | cmicro / Go | errors |"
  echo "|---|---:|---:|---:|---|"
  printf '%s\n' "${churn_rows[@]}"
fi
for s in "${skipped[@]}"; do echo "skipped: $s"; done
