#!/usr/bin/env bash
# The 10⁷-parameter federation of issue 20 (minutes; not part of scripts/test.sh): one round
# of DP-SGD with authenticated secure aggregation (packed encoding, value_bits 11; key
# committee K = 4, t = 3) of a 10,605,578-parameter MNIST MLP (784-8192-512-10), through one
# `confide server` process and one `confide client` process per client, over mutual TLS on
# loopback. Local training is one DP-SGD step of an expected 16 examples, so the time goes
# to the secure-aggregation path. For each number of clients per round it prints one
# markdown table row: the round's time split (client train, encrypt, upload; server sum,
# decrypt), the bytes of one upload, and the peak RSS and CPU seconds of the server and of
# the largest client process.
#
# `scripts/large-model.sh sim [CLIENTS…]` runs instead one round of `confide sim` (in-memory
# transport, virtual time) of a 10,579,010-parameter causal Transformer on tiny Shakespeare
# (d = 512, 4 blocks, 8 heads, ff 1536, windows of 32 characters; the text from the cache,
# `confide data fetch shakespeare`), one DP-SGD step of an expected 4 windows per client,
# the same secure aggregation, and prints its wall and CPU seconds, peak RSS and bytes.
#
#   scripts/large-model.sh [CLIENTS…]        (default: 4 8 12, each at least 4, the committee;
#                                            LARGE_MODEL_PORT, default 17170; LARGE_MODEL_UPLOAD_MB,
#                                            the server's max_upload_mb, default 0: 1024 MiB;
#                                            LARGE_MODEL_KEEP=DIR copies each run's logs there)
#
# Columns: train, encrypt (medians over clients, from the client's 'update encrypted' log),
# upload (median of the clients' 'result pushed' seconds: from the first byte sent to the
# server's acknowledgement, which comes once the server has received it), sum (the server's
# 'work done' for AggregationWork: decode, signature and commitment check, the store of the
# commitment tree, the addition; median and total over the round's uploads), decrypt (from
# the last upload added, when the decryption request goes out, to the round's end: members'
# challenges, openings and shares, and the server's combine), round (from the round's start
# to its end, key setup excluded). Wall times are
# disturbed by whatever else runs on the machine; CPU seconds are each process's user+system.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=fleet
if [ "${1:-}" = sim ]; then
  mode=sim
  shift
fi
counts=("${@:-4 8 12}")
# shellcheck disable=SC2206
counts=(${counts[*]})
port=${LARGE_MODEL_PORT:-17170}
upload_mb=${LARGE_MODEL_UPLOAD_MB:-0}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/confide" ./cmd/confide
bin="$work/confide"
# seconds of user+system CPU and peak RSS (MB) from /usr/bin/time -v output
cpu() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.1f", s }' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "—"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m }'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

if [ "$mode" = sim ]; then
  echo "| clients per round | wall s | CPU s | peak RSS MB | bytes up | bytes down |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for n in "${counts[@]}"; do
    cat >"$work/sim.yaml" <<EOF
name: large-model
seed: 1
rounds: 1
clients: $n
clients_per_round: $n
min_fit: $n
dataset: {name: shakespeare, seq_len: 32, max_test: 16}
partition: iid
model: {type: transformer, embed: 512, layers: 4, heads: 8, ff: 1536, norm: pre, positional: sinusoidal}
training: {epochs: 1, batch_size: 4, optimizer: sgd, lr: 0.01}
dp: {noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5, steps: 1, update_clip_norm: 1}
secure_aggregation: {enabled: true, committee_size: 4, threshold: 3, value_bits: 11}
evaluation: {every: 1, batch_size: 16}
workers: 1
plots: false
EOF
    /usr/bin/time -v "$bin" sim --config "$work/sim.yaml" --results-dir "$work/results" -o json >"$work/sim.json" 2>"$work/sim.log"
    j() { sed -n "s/^  \"$1\": \([0-9.]*\).*/\1/p" "$work/sim.json"; }
    wall=$(awk -F': ' '/Elapsed/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.1f", s }' "$work/sim.log")
    echo "| $n | $wall | $(cpu "$work/sim.log") | $(rss "$work/sim.log") | $(j bytes_up) | $(j bytes_down) |"
  done
  exit 0
fi
pki="$work/pki"
"$bin" ca init --dir "$pki" >/dev/null
"$bin" ca issue --dir "$pki" --server --name server --host 127.0.0.1 >/dev/null
max=0
for n in "${counts[@]}"; do [ "$n" -gt "$max" ] && max=$n; done
"$bin" ca issue --dir "$pki" --name 'client-%d' --count "$max" >/dev/null


echo "| clients | max_upload_mb | train s | encrypt s | upload s | sum s (median, total) | decrypt s | round s | upload bytes | server RSS MB | server CPU s | client RSS MB (max) | client CPU s (max) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in "${counts[@]}"; do
  run="$work/run-$n"
  mkdir -p "$run"
  cat >"$run/server.yaml" <<EOF
listen: 127.0.0.1:$port
metrics_listen: ""
max_clients: $n
max_upload_mb: $upload_mb
federation:
  rounds: 1
  model: {type: mlp, input: 784, hidden: [8192, 512], output: 10}
  sampling: {num_fit: $n, min_fit: $n, min_available: $n, fraction_evaluate: 0}
  deadlines: {fit: 60m, key_setup: 10m, decrypt: 30m, client_timeout: 10m}
  strategy: {name: fedavg}
  training: {epochs: 1, batch_size: 16, optimizer: sgd, lr: 0.05, weight_scale: 10000}
  dp: {noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5, sample_rate: 0.001, steps: 1, update_clip_norm: 1}
  secure_aggregation: {enabled: true, committee_size: 4, threshold: 3, value_bits: 11}
EOF
  /usr/bin/time -v "$bin" server --config "$run/server.yaml" --tls-cert "$pki/server.crt" --tls-key "$pki/server.key" \
    --client-ca "$pki/ca.crt" --log-level info >"$run/server.out" 2>"$run/server.log" &
  server=$!
  pids=("$server")
  for ((i = 0; i < n; i++)); do
    /usr/bin/time -v "$bin" client --server "127.0.0.1:$port" --ca "$pki/ca.crt" --tls-cert "$pki/client-$i.crt" \
      --tls-key "$pki/client-$i.key" --dataset mnist --partition iid --num-clients "$n" --client-index "$i" \
      --epsilon 100 --delta 1e-5 --state-dir "$run/state/$i" --log-level info >"$run/client-$i.out" 2>"$run/client-$i.log" &
    pids+=("$!")
  done
  status=0
  wait "$server" || status=$?
  if [ "$status" != 0 ]; then
    for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
  fi
  for p in "${pids[@]:1}"; do wait "$p" || status=$?; done
  pids=()
  if [ "$status" != 0 ] || grep -q 'failed=true\|round failed' "$run/server.log"; then
    echo "large-model: the run with $n clients failed (exit $status); server log:" >&2
    tail -20 "$run/server.log" >&2
    exit 1
  fi
  cat "$run"/client-*.log | grep 'msg="update encrypted"' >"$run/enc" || true
  train=$(field train_seconds <"$run/enc" | median)
  encrypt=$(field encrypt_seconds <"$run/enc" | median)
  bytes=$(field bytes <"$run/enc" | median | cut -d. -f1)
  upload=$(cat "$run"/client-*.log | grep 'msg="result pushed"' | grep 'task=fit-' | field seconds | median)
  grep 'work=server.AggregationWork' "$run/server.log" | field seconds >"$run/sum"
  sum="$(median <"$run/sum"), $(awk '{ s += $1 } END { printf "%.1f", s }' "$run/sum")"
  # decrypt: from the last upload added (the fit phase ends, the decryption request goes
  # out) to the round's end; round: from its start to its end
  ts() { sed -n 's/^time=\([^ ]*\) .*/\1/p' | xargs -I{} date -d {} +%s.%N; }
  t_start=$(grep -m1 'msg="round started"' "$run/server.log" | ts)
  t_added=$(grep 'work=server.AggregationWork' "$run/server.log" | tail -1 | ts)
  t_end=$(grep -m1 'msg="round finished"' "$run/server.log" | ts)
  decrypt=$(awk -v a="$t_added" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
  round=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
  crss=0 ccpu=0
  for ((i = 0; i < n; i++)); do
    r=$(rss "$run/client-$i.log") c=$(cpu "$run/client-$i.log")
    [ "$r" -gt "$crss" ] && crss=$r
    ccpu=$(awk -v a="$ccpu" -v b="$c" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "| $n | $upload_mb | $train | $encrypt | $upload | $sum | $decrypt | $round | $bytes | $(rss "$run/server.log") | $(cpu "$run/server.log") | $crss | $ccpu |"
  if [ -n "${LARGE_MODEL_KEEP:-}" ]; then cp -r "$run" "$LARGE_MODEL_KEEP/"; fi
done
