#!/usr/bin/env bash
# A server that loses nothing, under the faults an operator meets, on loopback: one
# `confide server --state-dir` and 7 `confide client` processes (MNIST, DP-SGD, secure
# aggregation with K = 4, t = 3, mutual TLS, 7 rounds), and in turn:
#
#   round 2  kill -9 an ordinary client and a committee member: the round completes;
#   round 3  kill -9 a second member (fewer than t holders left): the round fails cleanly,
#            and the next round runs under a new committee;
#   round 5  kill -9 the server and start it again with the same command: it resumes after
#            round 4 with its clients and committee, and no client pays twice for round 5;
#   round 6  SIGSTOP a client past the fit deadline: it is dropped, its late result refused,
#            and after SIGCONT it takes part in round 7.
#
#   scripts/faults.sh     (CONFIDE_FAULTS_PORT, default 17170)
set -euo pipefail
cd "$(dirname "$0")/.."

port=${CONFIDE_FAULTS_PORT:-17170}
work=$(mktemp -d)
declare -A pid
cleanup() {
  for p in "${pid[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "faults: $*" >&2
  for f in "$work"/server-*.log; do echo "--- $f" >&2; grep -E 'round|committee|refused|resum|wait' "$f" | tail -25 >&2 || true; done
  exit 1
}
log() { cat "$work"/server-*.log 2>/dev/null; }
# await PATTERN: wait (up to 4 minutes) until a server log line matches.
await() {
  for _ in $(seq 1200); do
    log | grep -qE "$1" && return 0
    sleep 0.2
  done
  fail "timed out waiting for: $1"
}

go build -o "$work/confide" ./cmd/confide
pki="$work/pki"
"$work/confide" ca init --dir "$pki" >/dev/null
"$work/confide" ca issue --dir "$pki" --server --name server --host 127.0.0.1 >/dev/null
clients=(0 1 2 3 4 5 6)
for i in "${clients[@]}"; do "$work/confide" ca issue --dir "$pki" --name "client-$i" >/dev/null; done
sed -e "s|^listen: .*|listen: 127.0.0.1:$port|" -e 's|^metrics_listen: .*|metrics_listen: ""|' \
    -e 's|^  rounds: 3|  rounds: 7|' -e 's|^    min_fit: 6 .*|    min_fit: 3|' -e 's|^    min_available: 6|    min_available: 4|' \
    -e 's|^    fit: 10m|    fit: 25s|' -e 's|^    client_timeout: 30s|    client_timeout: 40s|' \
    examples/server.yaml > "$work/server.yaml"
server_cmd=("$work/confide" server --config "$work/server.yaml" --state-dir "$work/server-state"
  --tls-cert "$pki/server.crt" --tls-key "$pki/server.key" --client-ca "$pki/ca.crt" --log-level info)
start_client() {
  local i=$1
  "$work/confide" client --config examples/client.yaml --server "127.0.0.1:$port" --client-index "$i" --num-clients 7 \
    --ca "$pki/ca.crt" --tls-cert "$pki/client-$i.crt" --tls-key "$pki/client-$i.key" \
    --state-dir "$work/state/$i" --log-level info >"$work/client-$i.out" 2>"$work/client-$i.log" &
  pid[client-$i]=$!
}

"${server_cmd[@]}" >"$work/server-1.out" 2>"$work/server-1.log" &
pid[server]=$!
for i in "${clients[@]}"; do start_client "$i"; done

# The first committee: kill one of its members and one client outside it in round 2.
await 'msg="key committee ready"'
members=$(log | grep 'msg="key committee ready"' | head -1 | sed -n 's/.*members="\[\([^]]*\)\]".*/\1/p')
read -r -a mem <<<"$members"
[ "${#mem[@]}" = 4 ] || fail "committee of ${#mem[@]} members: $members"
outsider=""
for i in "${clients[@]}"; do
  case " $members " in *" client-$i "*) ;; *) outsider="client-$i"; break ;; esac
done
await 'msg="round started" round=2'
kill -9 "${pid[$outsider]}" "${pid[${mem[0]}]}"
wait "${pid[$outsider]}" "${pid[${mem[0]}]}" 2>/dev/null || true
echo "faults: round 2: killed $outsider and committee member ${mem[0]}" >&2
await 'msg="round (finished|failed)" round=2'
log | grep -qE 'msg="round finished" round=2 ' || fail "round 2 failed after losing one member of K = 4, t = 3"

# A second member in round 3: fewer than t holders remain.
await 'msg="round started" round=3'
kill -9 "${pid[${mem[1]}]}"
wait "${pid[${mem[1]}]}" 2>/dev/null || true
echo "faults: round 3: killed a second committee member ${mem[1]}" >&2
await 'msg="round (finished|failed)" round=3'
log | grep -E 'msg="round failed" round=3 ' | grep -q 'key-committee members are online' ||
  fail "round 3 did not fail for want of committee members"
await 'msg="round finished" round=4'
[ "$(log | grep -c 'msg="key committee ready"')" -ge 2 ] || fail "no new committee after round 3"
echo "faults: round 3 failed cleanly; round 4 ran under a new committee" >&2

# The server, during round 5.
# Rounds take about a second here, so the kill follows the start closely; should round 5
# finish first all the same, the restart must resume after round 5 instead.
await 'msg="round started" round=5'
sleep 0.3
kill -9 "${pid[server]}"
wait "${pid[server]}" 2>/dev/null || true
done_before=$(grep -c 'msg="round finished"' "$work/server-1.log")
echo "faults: server killed (SIGKILL) during round 5 ($done_before rounds finished); starting it again" >&2
"${server_cmd[@]}" >"$work/server-2.out" 2>"$work/server-2.log" &
pid[server]=$!
await_file() {
  for _ in $(seq 300); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.2; done
  return 1
}
# Round 3 failed, so $done_before finished rounds mean rounds 1..$done_before+1 are done.
want=$((done_before + 1))
await_file 'resuming the federation' "$work/server-2.log" || fail "the restarted server did not say it resumes"
grep -q "rounds_done=$want " "$work/server-2.log" || fail "the restarted server did not resume after round $want"
committees_before=$(grep -c 'msg="key committee ready"' "$work/server-1.log")

# A client stopped past the fit deadline in round 6.
await 'msg="round started" round=6'
alive=()
for i in "${clients[@]}"; do
  case "client-$i" in "$outsider" | "${mem[0]}" | "${mem[1]}") ;; *) alive+=("client-$i") ;; esac
done
stopped=${alive[0]}
kill -STOP "${pid[$stopped]}"
echo "faults: round 6: $stopped stopped (SIGSTOP) past the 25 s fit deadline" >&2
await 'msg="round (finished|failed)" round=6'
sleep 5
kill -CONT "${pid[$stopped]}"
await 'msg="round finished" round=7'

status=0
wait "${pid[server]}" || status=$?
for c in "${alive[@]}"; do wait "${pid[$c]}" || status=$?; done
[ "$status" = 0 ] || fail "a process failed (exit $status)"
cat "$work/server-2.out"
grep -q 'msg="key committee ready"' "$work/server-2.log" && fail "the restarted server formed a new committee instead of keeping the stored one"
contributors() { grep -E "msg=\"round finished\" round=$1 " "$work/server-2.log" | sed -n 's/.* contributors=\([0-9]*\).*/\1/p'; }
[ "$(contributors 6)" = 3 ] || fail "round 6 had $(contributors 6) contributors, want the 3 clients not stopped"
[ "$(contributors 7)" = 4 ] || fail "round 7 had $(contributors 7) contributors, want all 4 again ($stopped back)"
grep -E 'msg="result refused".*client='"$stopped" "$work/server-2.log" | grep -q 'fit-r6' ||
  grep -q "$stopped" <(grep -E 'msg="client did not contribute" round=6' "$work/server-2.log") ||
  fail "$stopped's round-6 task was not dropped"
# The server's account continued (one charge per client and round, the repeated round 5
# included once), and every surviving client's ledger holds what the server accounts.
for c in "${alive[@]}"; do
  i=${c#client-}
  "$work/confide" privacy ledger "$work/state/$i/privacy-ledger.json" -o json >"$work/ledger-$i.json" || fail "$c's ledger is unreadable"
done
echo "faults: passed ($committees_before committees before the restart, none after; rounds 2, 4-7 completed, 3 failed cleanly)" >&2
