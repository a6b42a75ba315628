#!/usr/bin/env bash
# Install, build, and run the greeter demo on the embedded defaults:
# greeter-server in the background, greeter-client calling it, then stop.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build greeter-server greeter-client cmicro-cli >/dev/null

PORT=${PORT:-$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo 18089)}
ADDR=127.0.0.1:$PORT
build/greeter-server --server_address="$ADDR" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done
echo "--- greeter-client --address $ADDR --name John"
build/greeter-client --address "$ADDR" --name John
echo "--- cmicro call --address $ADDR greeter Greeter.Hello '{\"name\":\"John\"}'"
build/cmicro call --address "$ADDR" greeter Greeter.Hello '{"name":"John"}'
