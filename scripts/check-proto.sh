#!/usr/bin/env bash
# Fails when the committed generated code under proto/ differs from what scripts/genproto.sh
# produces from the .proto files. Exits 0 with a notice when protoc is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null 2>&1; then
  echo "check-proto: protoc not installed; skipping the staleness check (apt-get install protobuf-compiler)" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/genproto.sh "$tmp"
stale=0
while IFS= read -r f; do
  rel=${f#"$tmp"/}
  if ! cmp -s "$f" "proto/$rel"; then
    echo "check-proto: proto/$rel is stale; run scripts/genproto.sh and commit the result" >&2
    diff -u "proto/$rel" "$f" | head -20 >&2 || true
    stale=1
  fi
done < <(find "$tmp" -name '*.go' | sort)
while IFS= read -r f; do
  rel=${f#proto/}
  if [ ! -e "$tmp/$rel" ]; then
    echo "check-proto: proto/$rel has no .proto source any more; delete it" >&2
    stale=1
  fi
done < <(find proto -name '*.pb.go' | sort)
if [ "$stale" = 0 ]; then
  echo "check-proto: generated code is up to date"
fi
exit "$stale"
