#!/usr/bin/env bash
# Load measurements of issue 13 (minutes; not part of scripts/test.sh):
#   scripts/load.sh          1,000 clients against one `confide server` process on loopback:
#                            server RSS and CPU, p50/p99 latency of every call kind
#   scripts/load.sh memory   200 rounds of examples/server.yaml through `confide server`:
#                            server RSS per 50 rounds
#   scripts/load.sh transport a 100 MB update pushed over the gRPC service against a raw
#                            loopback TCP copy of the same bytes (issue 20)
# Settings: see server/load_e2e_test.go (CONFIDE_LOAD_CLIENTS, CONFIDE_LOAD_ROUNDS, …).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-clients}" in
  clients) run='^TestLoad1000Clients$' ;;
  memory) run='^TestMemory200Rounds$' ;;
  transport) run='^TestPushThroughputAgainstRawTCP$' ;;
  *) echo "usage: scripts/load.sh [clients|memory|transport]" >&2; exit 2 ;;
esac
CONFIDE_LOAD=1 go test -count=1 -timeout 90m -run "$run" -v ./server/
