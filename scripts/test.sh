#!/usr/bin/env bash
# The test suite: formatting, vet, all tests (the race detector on the packages
# that start goroutines) and the acceptance runs. This is the README quick start test command.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...
# Packages with goroutines run under -race; everything else without (faster).
race_pkgs=$(go list ./... | grep -E '/(secagg|server|client|sim|audit|model|dp|internal/linalg|dashboard)($|/)' || true)
other_pkgs=$(go list ./... | grep -vE '/(secagg|server|client|sim|audit|model|dp|internal/linalg|dashboard)($|/)' || true)
if [ -n "$other_pkgs" ]; then
  go test -count=1 -timeout 20m $other_pkgs
fi
if [ -n "$race_pkgs" ]; then
  go test -count=1 -race -timeout 20m $race_pkgs
fi
# The dashboard's browser tests (headless Chromium through the DevTools protocol, following
# a live simulation) three times in a row, so that a flaky live update shows.
go test -count=3 -run Browser ./dashboard/
# Acceptance runs the race detector would make too slow: the secure-aggregation accuracy
# case (100 clients, d = 10⁵, K = 10, t = 6) and the multi-process federation on loopback
# (1 server + 6 client processes, MNIST, DP-SGD, secure aggregation, 3 strategies) and the
# fault-injection run of scripts/faults.sh (killed clients, members and server; a stopped client),
# and the tabular federations of examples/tabular (4 client processes, each with its own CSV).
go test -count=1 -run 'TestAcceptanceSum' ./secagg/
CONFIDE_E2E=1 go test -count=1 -timeout 20m -run 'TestMultiProcessMNIST|TestFaults|TestMultiProcessTabular' ./server/
