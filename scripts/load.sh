#!/usr/bin/env bash
# Load measurements of issue 13 (minutes; not part of scripts/test.sh):
#   scripts/load.sh latency  1,000 lightweight clients (an 805-parameter model) against one
#                            `confide server` process on loopback, arriving over 10 s, 100
#                            sampled a round; the server runs on CPU 0 and the load generator
#                            on the others (when there are two or more), so that the clients'
#                            own work does not queue the server's: server RSS and CPU, p50/p99
#                            of every call kind, checked against p99 < 100 ms
#   scripts/load.sh burst    the worst case: the same 1,000 clients all sampled every round,
#                            with an MNIST MLP 784-64-10 (407 kB tasks), arriving at once: the
#                            server ships 1,000 tasks and takes 1,000 updates at once; RSS
#                            < 1 GiB and no errors are checked, latencies reported (a call's
#                            p99 is then the whole burst's duration)
#   scripts/load.sh memory   200 rounds of examples/server.yaml through `confide server`:
#                            server RSS per 50 rounds
#   scripts/load.sh transport a 100 MB update pushed over the gRPC service against a raw
#                            loopback TCP copy of the same bytes (issue 20)
# Settings: see server/load_e2e_test.go (CONFIDE_LOAD_CLIENTS, CONFIDE_LOAD_ROUNDS, …);
# variables set by the caller take precedence.
set -euo pipefail
cd "$(dirname "$0")/.."
pin=()
case "${1:-latency}" in
  latency)
    run='^TestLoad1000Clients$'
    export CONFIDE_LOAD_HIDDEN="${CONFIDE_LOAD_HIDDEN:-1}" CONFIDE_LOAD_PER_ROUND="${CONFIDE_LOAD_PER_ROUND:-100}" \
      CONFIDE_LOAD_RAMP="${CONFIDE_LOAD_RAMP:-10s}"
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
      export CONFIDE_LOAD_SERVER_CPUS="${CONFIDE_LOAD_SERVER_CPUS:-0}"
      pin=(taskset -c "1-$(($(nproc) - 1))")
    fi ;;
  burst|clients)
    run='^TestLoad1000Clients$'
    export CONFIDE_LOAD_P99="${CONFIDE_LOAD_P99:-0}" ;;
  memory) run='^TestMemory200Rounds$' ;;
  transport) run='^TestPushThroughputAgainstRawTCP$' ;;
  *) echo "usage: scripts/load.sh [latency|burst|memory|transport]" >&2; exit 2 ;;
esac
# Built before the run (not by the test), so that nothing compiles while it is measured.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/confide" ./cmd/confide
go test -c -o "$bin/server.test" ./server/
export CONFIDE_LOAD_BIN="${CONFIDE_LOAD_BIN:-$bin/confide}"
cd server
CONFIDE_LOAD=1 "${pin[@]}" "$bin/server.test" -test.count=1 -test.timeout 90m -test.run "$run" -test.v
