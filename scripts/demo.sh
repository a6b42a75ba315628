#!/usr/bin/env bash
# Install, build, and run the greeter demo on the embedded defaults:
# greeter-server in the background, then greeter-client and `cmicro call`
# find it BY NAME over mDNS (the default registry; no --address, no
# registry server), then stop.
#
# mDNS multicasts, so the demo runs in a private network namespace that
# holds only lo (unshare --net, lo up, 224.0.0.0/4 routed to lo): nothing
# it sends can leave this machine. That needs root; without it the demo
# falls back to --registry=memory and --address, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CMICRO_DEMO_NETNS:-}" != 1 ]; then
  scripts/install-deps.sh >/dev/null
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C build greeter-server greeter-client cmicro-cli >/dev/null
  if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null &&
     command -v ip >/dev/null; then
    CMICRO_DEMO_NETNS=1 exec unshare --net "$0" "$@"
  fi
  echo "(not root: no private network namespace, so no mDNS;" \
       "using --registry=memory and --address instead)"
  PORT=${PORT:-18089}
  build/greeter-server --registry=memory --server_address=127.0.0.1:$PORT &
  SERVER=$!
  trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
  done
  build/greeter-client --registry=memory --address 127.0.0.1:$PORT --name John
  build/cmicro call --registry=memory --address 127.0.0.1:$PORT \
    greeter Greeter.Hello '{"name":"John"}'
  exit 0
fi

# Inside the private namespace: only lo, up, with multicast routed to it.
ip link set lo up
ip route add 224.0.0.0/4 dev lo
unset MICRO_REGISTRY MICRO_REGISTRY_ADDRESS
echo "--- private network namespace: $(ip -brief link | awk '{print $1}' | xargs)"
echo "--- greeter-server (default registry: mdns)"
build/greeter-server --server_address=127.0.0.1:${PORT:-18089} &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  build/cmicro list services 2>/dev/null | grep -qx greeter && break
  sleep 0.05
done
echo "--- cmicro list services"
build/cmicro list services
echo "--- greeter-client --name John   (found by name over mDNS)"
build/greeter-client --name John
echo "--- cmicro call greeter Greeter.Hello '{\"name\":\"John\"}'"
build/cmicro call greeter Greeter.Hello '{"name":"John"}'
