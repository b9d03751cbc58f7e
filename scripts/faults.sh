#!/usr/bin/env bash
# A server that loses nothing, on loopback: one `confide server --state-dir` and 6 `confide
# client` processes (MNIST, DP-SGD, secure aggregation K = 4, t = 3, 5 rounds, mutual TLS).
# While round 3 runs, the server is killed with SIGKILL and started again with the same
# command; it must resume after round 2 with the same clients and key committee, finish the
# 5 rounds, report a record-level ε that continued (not restarted), and every client's
# ledger must hold what it spent.
#
#   scripts/faults.sh     (CONFIDE_FAULTS_PORT, default 17170)
set -euo pipefail
cd "$(dirname "$0")/.."

port=${CONFIDE_FAULTS_PORT:-17170}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "faults: $*" >&2
  for f in "$work"/server-*.log; do echo "--- $f" >&2; tail -15 "$f" >&2; done
  exit 1
}

go build -o "$work/confide" ./cmd/confide
pki="$work/pki"
"$work/confide" ca init --dir "$pki" >/dev/null
"$work/confide" ca issue --dir "$pki" --server --name server --host 127.0.0.1 >/dev/null
for i in 0 1 2 3 4 5; do "$work/confide" ca issue --dir "$pki" --name "client-$i" >/dev/null; done
sed -e "s|^listen: .*|listen: 127.0.0.1:$port|" -e 's|^metrics_listen: .*|metrics_listen: ""|' \
    -e 's|^  rounds: 3|  rounds: 5|' examples/server.yaml > "$work/server.yaml"
server_cmd=("$work/confide" server --config "$work/server.yaml" --state-dir "$work/server-state"
  --tls-cert "$pki/server.crt" --tls-key "$pki/server.key" --client-ca "$pki/ca.crt" --log-level info)

"${server_cmd[@]}" >"$work/server-1.out" 2>"$work/server-1.log" &
server=$!
for i in 0 1 2 3 4 5; do
  "$work/confide" client --config examples/client.yaml --server "127.0.0.1:$port" --client-index "$i" \
    --ca "$pki/ca.crt" --tls-cert "$pki/client-$i.crt" --tls-key "$pki/client-$i.key" \
    --state-dir "$work/state/$i" --log-level info >"$work/client-$i.out" 2>"$work/client-$i.log" &
  pids+=("$!")
done

# Kill the server once round 3 has started (its fit tasks are out).
for _ in $(seq 600); do
  grep -q 'msg="round started" round=3' "$work/server-1.log" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || fail "the server exited before round 3"
  sleep 0.2
done
grep -q 'msg="round started" round=3' "$work/server-1.log" || fail "round 3 never started"
sleep 1
kill -9 "$server"
wait "$server" 2>/dev/null || true
echo "faults: server killed (SIGKILL) during round 3; starting it again with the same command" >&2

"${server_cmd[@]}" >"$work/server-2.out" 2>"$work/server-2.log" &
server=$!
pids+=("$server")
status=0
wait "$server" || status=$?
for p in "${pids[@]:0:6}"; do wait "$p" || status=$?; done
[ "$status" = 0 ] || fail "a process failed (exit $status)"
cat "$work/server-2.out"
grep -q 'msg="resuming the federation from its state".*rounds_done=2' "$work/server-2.log" || fail "the restarted server did not resume after round 2"
if grep -q 'msg="key committee ready"' "$work/server-2.log"; then
  fail "the restarted server formed a new key committee instead of keeping the stored one"
fi
awk '
  /^round [0-9]+: accuracy/ { n++; last = $2; acc = $4 + 0 }
  /failed/ { print "faults: " $0; bad = 1 }
  END {
    if (n != 5 || last != "5:") { printf "faults: %d round lines ending at %s, want rounds 1 to 5\n", n, last; exit 1 }
    if (acc < 0.85) { printf "faults: final accuracy %.4f < 0.85\n", acc; exit 1 }
    exit bad }' "$work/server-2.out" >&2
# The server's account continued, one charge per client and round: the clients of the
# interrupted round 3 sent the update they had made again instead of training twice, so
# every client's ledger holds exactly 5 rounds, the ε the server accounts.
eps=$(sed -n 's/.*largest client ε \([0-9.]*\) at.*/\1/p' "$work/server-2.out")
[ -n "$eps" ] || fail "no ε in the server's report"
for i in 0 1 2 3 4 5; do
  "$work/confide" privacy ledger "$work/state/$i/privacy-ledger.json" -o json >"$work/ledger-$i.json" || fail "client $i's ledger is unreadable"
  spent=$(sed -n 's/^  "epsilon": \([0-9.e+-]*\),*$/\1/p' "$work/ledger-$i.json")
  awk -v a="$spent" -v b="$eps" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.006) }' ||
    fail "client $i's ledger holds ε $spent, the server accounts $eps: a round was charged twice or lost"
done
echo "faults: passed (ε $eps on the server and in every client's ledger)" >&2
