#!/usr/bin/env bash
# Regenerates the Go code of proto/ beside the .proto files. Needs protoc (Debian package
# protobuf-compiler) and the two Go plugins at the versions pinned below, which it installs
# with `go install` when they are missing or of another version.
#
#   scripts/genproto.sh            # regenerate in place
#   scripts/genproto.sh OUTDIR     # generate into OUTDIR instead (used by check-proto.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

if ! command -v protoc >/dev/null 2>&1; then
  echo "genproto: protoc not found; install it (apt-get install protobuf-compiler)" >&2
  exit 2
fi
gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
if [ "$(protoc-gen-go --version 2>/dev/null | awk '{print $2}')" != "$PROTOC_GEN_GO_VERSION" ]; then
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [ "$(protoc-gen-go-grpc --version 2>/dev/null | awk '{print $2}')" != "${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

out="${1:-proto}"
mkdir -p "$out"
protos=$(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd proto && protoc -I . \
  --go_out="$(cd .. && cd "$out" && pwd)" --go_opt=paths=source_relative \
  --go-grpc_out="$(cd .. && cd "$out" && pwd)" --go-grpc_opt=paths=source_relative \
  $protos)
