#!/usr/bin/env bash
# Python grpcio interop (grpcio_test.py). Needs CMICRO_BIN_DIR (a build dir
# with greeter-proto-server) and the venv scripts/install-deps.sh makes.
set -euo pipefail
cd "$(dirname "$0")"
PYVENV=${CMICRO_PY_VENV:-$HOME/.cache/cmicro/grpcio-venv}
if ! "$PYVENV/bin/python" -c "import grpc, grpc_tools" 2>/dev/null; then
  echo "grpcio: no venv with grpcio at $PYVENV: run scripts/install-deps.sh" >&2
  exit 1
fi
export CMICRO_BIN_DIR=${CMICRO_BIN_DIR:?set CMICRO_BIN_DIR to the cmicro CMake build dir}
exec "$PYVENV/bin/python" grpcio_test.py
