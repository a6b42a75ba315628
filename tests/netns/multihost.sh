#!/usr/bin/env bash
# Several hosts on one machine: three network namespaces (h1, h2, h3),
# each with a veth into a bridge that lives in a fourth namespace, on
# 10.99.0.0/24 addresses that exist only inside them. Nothing is added to
# the host's own namespace and there is no route out, so no mDNS (or any)
# traffic can leave the machine. The test program (multihost.c) runs on
# h3 and drives greeter-servers on h1 and h2; see its header.
#
# Usage: multihost.sh BUILD_DIR. Exit 77 (skip) when not root or without
# ip(8) or network namespaces. Everything is torn down on any exit.
set -uo pipefail
BUILD=${1:?usage: multihost.sh BUILD_DIR}
IP=$(command -v ip || true)

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, veth, bridge)"
[ -n "$IP" ] || skip "needs ip(8) from iproute2"
for b in greeter-server tests/netns/multihost; do
  [ -x "$BUILD/$b" ] || { echo "FAIL: $BUILD/$b is missing"; exit 1; }
done

P=cmt$$            # a unique prefix: parallel runs do not collide
BR=$P-br
NS=("$P-h1" "$P-h2" "$P-h3")

cleanup() {
  for n in "${NS[@]}" "$BR"; do
    # Only processes inside our own namespaces: the servers we started.
    pids=$("$IP" netns pids "$n" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    "$IP" netns del "$n" 2>/dev/null
  done
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$IP" netns add "$BR" 2>/dev/null || skip "cannot create network namespaces here"
set -e
"$IP" -n "$BR" link add br0 type bridge
"$IP" -n "$BR" link set br0 up
for i in 1 2 3; do
  n=${NS[$((i - 1))]}
  "$IP" netns add "$n"
  # Created directly inside the namespaces: never visible on the host.
  "$IP" link add v$i netns "$n" type veth peer name b$i netns "$BR"
  "$IP" -n "$BR" link set b$i master br0 up
  "$IP" -n "$n" link set lo up
  "$IP" -n "$n" addr add 10.99.0.$i/24 dev v$i
  "$IP" -n "$n" link set v$i up
done
set +e
echo "hosts: ${NS[*]} on bridge br0 in $BR (10.99.0.1-3/24)"

"$IP" netns exec "${NS[2]}" "$BUILD/tests/netns/multihost" "$IP" \
  "$BUILD/greeter-server" "${NS[0]}" 10.99.0.1:18080 "${NS[1]}" \
  10.99.0.2:18080 v1
