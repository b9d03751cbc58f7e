#!/usr/bin/env bash
# Multi-process federation on loopback: one `confide server` and 6 `confide client`
# processes on MNIST (MLP, DP-SGD, secure aggregation with K = 4, t = 3, 3 rounds), using
# examples/server.yaml and examples/client.yaml, over mutual TLS with certificates from
# `confide ca` in a temporary directory. Checks that the central test accuracy rises every
# round and ends at 0.85 or more, that `confide privacy ledger` reads client 0's privacy
# ledger and reports a positive ε within its budget, then checks that a server without TLS
# settings and a robust strategy together with secure aggregation are refused.
#
#   scripts/e2e.sh [fedavg|fedadam|fedprox]     (default fedavg; CONFIDE_E2E_PORT, default 17070)
#
# `scripts/e2e.sh hierarchy` runs instead the hierarchical-aggregation E2E tests (issue 17,
# item 5): the same fleet flat and behind two summing `confide aggregator` processes, 12
# clients (TestHierarchicalFleetSmall, about a minute) and 1,000 clients in four
# `confide client --virtual 250` processes (TestMultiProcessHierarchicalFleet, several
# minutes), logging the root's ingress bytes and wall time per round of both runs.
set -euo pipefail
cd "$(dirname "$0")/.."

strategy=${1:-fedavg}
if [ "$strategy" = hierarchy ]; then
  CONFIDE_E2E=1 exec go test -count=1 -timeout 90m -v -run 'TestHierarchicalFleetSmall|TestMultiProcessHierarchicalFleet' ./server/
fi
port=${CONFIDE_E2E_PORT:-17070}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

case "$strategy" in
  fedavg) block='name: fedavg' ;;
  fedadam) block='name: fedadam\n    server_lr: 0.03' ;;
  fedprox) block='name: fedprox\n    proximal_mu: 0.01' ;;
  *) echo "e2e: strategy $strategy: use fedavg, fedadam or fedprox (or hierarchy)" >&2; exit 2 ;;
esac

go build -o "$work/confide" ./cmd/confide
pki="$work/pki"
"$work/confide" ca init --dir "$pki" >/dev/null
"$work/confide" ca issue --dir "$pki" --server --name server --host 127.0.0.1 --host localhost >/dev/null
for i in 0 1 2 3 4 5; do
  "$work/confide" ca issue --dir "$pki" --name "client-$i" >/dev/null
done
server_tls=(--tls-cert "$pki/server.crt" --tls-key "$pki/server.key" --client-ca "$pki/ca.crt")
sed -e "s|^listen: .*|listen: 127.0.0.1:$port|" -e 's|^metrics_listen: .*|metrics_listen: ""|' \
    -e "s|^    name: fedavg .*|    $block|" examples/server.yaml > "$work/server.yaml"

echo "e2e: $strategy, 1 server + 6 clients on 127.0.0.1:$port over mutual TLS (logs in $work until exit)" >&2
"$work/confide" server --config "$work/server.yaml" "${server_tls[@]}" --log-level info >"$work/server.out" 2>"$work/server.log" &
server=$!
pids+=("$server")
for i in 0 1 2 3 4 5; do
  "$work/confide" client --config examples/client.yaml --server "127.0.0.1:$port" --client-index "$i" \
    --ca "$pki/ca.crt" --tls-cert "$pki/client-$i.crt" --tls-key "$pki/client-$i.key" \
    --state-dir "$work/state/$i" --log-level info >"$work/client-$i.out" 2>"$work/client-$i.log" &
  pids+=("$!")
done

status=0
wait "$server" || status=$?
for p in "${pids[@]:1}"; do wait "$p" || status=$?; done
cat "$work/server.out"
if [ "$status" != 0 ]; then
  echo "e2e: a process failed (exit $status); server log:" >&2
  tail -30 "$work/server.log" >&2
  exit 1
fi
awk '
  /^round [0-9]+: accuracy/ { acc = $4 + 0; n++
    if (n > 1 && acc <= prev) { printf "e2e: accuracy fell or stalled at %s (%.4f after %.4f)\n", $2, acc, prev; bad = 1 }
    prev = acc }
  /failed/ { print "e2e: " $0; bad = 1 }
  END {
    if (n != 4) { printf "e2e: %d accuracy lines, want 4 (rounds 0 to 3)\n", n; exit 1 }
    if (prev < 0.85) { printf "e2e: final accuracy %.4f < 0.85\n", prev; exit 1 }
    exit bad }' "$work/server.out" >&2

# With mutual TLS secure aggregation runs authenticated (signed key material and uploads,
# spot-checked decryptions), never in the passive model.
if grep -q "passive model" "$work/server.log"; then
  echo "e2e: the server ran secure aggregation in the passive model despite mutual TLS" >&2
  exit 1
fi

# The ledger a client wrote is the file `confide privacy ledger` audits.
ledger="$work/state/0/privacy-ledger.json"
if ! "$work/confide" privacy ledger "$ledger" -o json >"$work/ledger.json" 2>"$work/ledger.err"; then
  echo "e2e: confide privacy ledger $ledger failed:" >&2
  cat "$work/ledger.err" >&2
  exit 1
fi
awk -F': ' '
  /^  "epsilon": / { eps = $2 + 0; seen = 1 }
  /^  "budget_epsilon": / { budget = $2 + 0 }
  END {
    if (!seen || !(eps > 0)) { print "e2e: client 0 ledger reports no positive epsilon"; exit 1 }
    if (eps > budget) { printf "e2e: client 0 ledger epsilon %g exceeds its budget %g\n", eps, budget; exit 1 }
    printf "e2e: client 0 ledger: epsilon %g spent of %g\n", eps, budget }' "$work/ledger.json" >&2

# Plaintext needs an explicit --insecure.
if "$work/confide" server --config "$work/server.yaml" >"$work/plain.out" 2>&1; then
  echo "e2e: a server without TLS settings started" >&2
  exit 1
fi
grep -q -- "--tls-cert and --tls-key" "$work/plain.out" || { cat "$work/plain.out" >&2; exit 1; }
echo "e2e: server without TLS settings refused: $(head -c 200 "$work/plain.out")" >&2

# A robust aggregator needs individual updates, which secure aggregation hides.
sed -e "s|^    name: .*|    name: krum|" "$work/server.yaml" > "$work/robust.yaml"
if "$work/confide" server --config "$work/robust.yaml" "${server_tls[@]}" >"$work/robust.out" 2>&1; then
  echo "e2e: krum with secure aggregation was accepted" >&2
  exit 1
fi
grep -q "secure aggregation lets the server see only their sum" "$work/robust.out" || { cat "$work/robust.out" >&2; exit 1; }
echo "e2e: robust strategy with secure aggregation refused: $(head -c 300 "$work/robust.out")" >&2
echo "e2e: $strategy passed" >&2
