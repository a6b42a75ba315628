#!/usr/bin/env bash
# Regenerates the committed Go protobuf types in pb/ (protoc-gen-go from
# the module's own google.golang.org/protobuf, so the version is go.sum's)
# from the .proto files the C side uses. Needs protoc (protobuf-compiler).
# CI does not run this: it only needs `go mod download`.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
P=../codec/proto
G=../../examples/greeter-proto
M="Mkitchen.proto=cmicro/interop/pb/kitchenpb"
M="$M,Mcommon/other.proto=cmicro/interop/pb/commonpb"
M="$M,Mlegacy.proto=cmicro/interop/pb/legacypb"
M="$M,Mgreeter.proto=cmicro/interop/pb/greeterpb"
rm -rf pb
protoc -I "$P" --plugin=protoc-gen-go="$tmp/protoc-gen-go" \
  --go_out=. --go_opt=module=cmicro/interop --go_opt="$M" \
  kitchen.proto common/other.proto legacy.proto
protoc -I "$G" --plugin=protoc-gen-go="$tmp/protoc-gen-go" \
  --go_out=. --go_opt=module=cmicro/interop --go_opt="$M" greeter.proto
echo "gen.sh: pb/ regenerated"
