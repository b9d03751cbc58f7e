#!/usr/bin/env bash
# The test suite: formatting, vet, and all tests, with the race detector on the packages
# that start goroutines. This is the command the README's quick start gives.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...
# Packages with goroutines run under -race; everything else without (faster).
race_pkgs=$(go list ./... | grep -E '/(secagg|server|client|sim|model|dp|internal/linalg)($|/)' || true)
other_pkgs=$(go list ./... | grep -vE '/(secagg|server|client|sim|model|dp|internal/linalg)($|/)' || true)
if [ -n "$other_pkgs" ]; then
  go test -count=1 -timeout 20m $other_pkgs
fi
if [ -n "$race_pkgs" ]; then
  go test -count=1 -race -timeout 20m $race_pkgs
fi
