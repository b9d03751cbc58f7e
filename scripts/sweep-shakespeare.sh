#!/usr/bin/env bash
# Sweep of federated next-character prediction on tiny Shakespeare by role, the LEAF setting
# (issue 19): one client per speaking role (all 292 roles), a fraction of them sampled per
# round. Target: ≥ 0.50 next-character accuracy on the central test set (every role's last
# 10% of lines, 1,401 windows of 80 characters) within 15 minutes of wall time on 2 cores,
# without DP; then the same recipe with record-level DP-SGD (every client ε ≤ 8 at δ = 1e-5)
# and secure aggregation, to report the gap.
#
# Every candidate is a base config from examples/ plus CONFIDE_* environment overrides (the
# keys of docs/config.md), so the table's "overrides" column is the whole difference. The
# text is the cache's copy (`confide data fetch shakespeare`).
#
# The machine is shared, so wall times are disturbed: judge a candidate by its CPU seconds
# (user + system of the sim process) and its parallel efficiency (the summary's
# parallel_efficiency: the share of GOMAXPROCS × wall the Go runtime had work for, which
# other processes do not lower). On an otherwise idle machine wall ≈ CPU / (2 × efficiency),
# so a run fits 15 minutes on 2 cores when CPU s ≤ 1,800 × efficiency.
#
# Each finished run appends one row to the table of this invocation in OUT (a section with
# the date, the commit, the machine's cores and the round override), so a long sweep can be
# committed as it grows. Columns: final and best central test accuracy (round of the best),
# the first evaluated round at or above TARGET and the CPU seconds spent by then (the run's
# CPU seconds pro rata to its elapsed wall time at that round), worst client ε from the
# clients' ledgers (– without DP), tasks refused on the privacy budget, wall and CPU seconds
# of the sim process, its parallel efficiency, and "15 min": yes when CPU s ≤ 1,800 ×
# efficiency (the whole run fits), "at target" when only the run up to TARGET does.
#
# Usage: scripts/sweep-shakespeare.sh [CANDIDATE...]     (default: every candidate)
#        scripts/sweep-shakespeare.sh --list
# Environment:
#   ROUNDS   override every candidate's rounds (short pruning runs; empty: the config's)
#   REPEATS  runs of each candidate (default 1)
#   TARGET   the accuracy of the "first round ≥" column (default 0.50)
#   OUT      the markdown table to append to (default docs/sweeps/shakespeare.md)
#   NOTE     a line written under the section heading
#   KEEP     a directory that keeps each run's rounds.csv as NAME-RUN.csv (default: none)
#   CONFIDE_BIN  a prebuilt confide binary (default: built into a temporary directory)
#   THREADS  GOMAXPROCS of the sim (default 2)
# Runs are sequential and niced (nice -n 19): the sims are CPU-heavy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out=${OUT:-docs/sweeps/shakespeare.md}
repeats=${REPEATS:-1}
rounds=${ROUNDS:-}
target=${TARGET:-0.50}
threads=${THREADS:-2}

# Model shapes, override words of their own: FEDAVG, the FedAvg paper's (McMahan et al.
# 2017, Shakespeare: embedding 8, two LSTM layers of 256); L256 one layer of 256 with
# embedding 16 (confide train's central LSTM); L128 the old example's one layer of 128.
fedavg_model=(MODEL_EMBED=8 MODEL_HIDDEN=[256] MODEL_LAYERS=2)
l256_model=(MODEL_EMBED=16 MODEL_HIDDEN=[256] MODEL_LAYERS=1)
l128_model=(MODEL_EMBED=16 MODEL_HIDDEN=[128] MODEL_LAYERS=1)
# DPSA: record-level DP-SGD on every client (σ, C = 1, a budget of ε = 8 at δ = 1e-5 that
# clients enforce by refusing tasks) and secure aggregation (K = 5, t = 3).
dpsa=(DP_MAX_GRAD_NORM=1 DP_DELTA=1e-5 DP_BUDGET_EPSILON=8 SECURE_AGGREGATION_ENABLED=true SECURE_AGGREGATION_COMMITTEE_SIZE=5 SECURE_AGGREGATION_THRESHOLD=3)

# Candidates: NAME|BASE (examples/BASE.yaml)|overrides (space-separated KEY=VALUE of CONFIDE_
# variables, without the prefix, or the words FEDAVG, L256, L128, DPSA above; values may not
# contain '|' or spaces).
candidates=(
	# The example before the sweep (its 30 rounds of 20 roles, one layer of 128).
	"old|shakespeare-lstm|L128 ROUNDS=30 CLIENTS_PER_ROUND=20 TRAINING_BATCH_SIZE=16 TRAINING_LR=0.003 STRATEGY_NAME=fedavg TRAINING_EPOCHS=1"
	# Pruning on L256 (2.5 times cheaper than FEDAVG): the client optimiser, local epochs and
	# the server's.
	"l256-adam|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=1"
	"l256-sgd1|shakespeare-lstm|L256 TRAINING_OPTIMIZER=sgd TRAINING_LR=1 TRAINING_BATCH_SIZE=10 TRAINING_EPOCHS=1"
	"l256-adam-e2|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=2"
	"l256-sgd1-avgm|shakespeare-lstm|L256 TRAINING_OPTIMIZER=sgd TRAINING_LR=1 TRAINING_BATCH_SIZE=10 STRATEGY_NAME=fedavgm STRATEGY_SERVER_LR=1 STRATEGY_MOMENTUM=0.9 TRAINING_EPOCHS=1"
	"l256-adam-fedadam|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 STRATEGY_NAME=fedadam STRATEGY_SERVER_LR=0.01 STRATEGY_TAU=0.001 TRAINING_EPOCHS=1"
	# Local epochs at equal CPU: 40 rounds of 1 epoch, 14 of 3 (against 20 of 2).
	"l256-adam-r40|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 ROUNDS=40 TRAINING_EPOCHS=1"
	"l256-adam-e3-r14|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=3 ROUNDS=14"
	# Record-level DP-SGD (σ = 1.6: a client's ε reaches 8 at δ = 1e-5 after 28 steps of
	# q = 0.4, about 9 rounds of 3 steps) with secure aggregation, on the recipe of l256-adam.
	"dpsa-l256-adam|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 DPSA DP_NOISE_MULTIPLIER=1.6 TRAINING_EPOCHS=1"
	# The same data and privacy with a cohort of a quarter: 8 rounds of 73 roles (each role
	# still trains in about 2 rounds), so each round averages 2.5 times the noisy updates.
	"dpsa-l256-adam-c73-r8|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 DPSA DP_NOISE_MULTIPLIER=1.6 CLIENTS_PER_ROUND=73 ROUNDS=8 TRAINING_EPOCHS=1"
	# Full length: 150 rounds of 29 roles (about 15 passes over the text), evaluated every 10;
	# then, after l256-adam-e2, 75 rounds of 2 local epochs (the same passes).
	"l256-adam-cos150|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 ROUNDS=150 EVALUATION_EVERY=10 STRATEGY_SERVER_LR_DECAY=cosine TRAINING_EPOCHS=1"
	"l256-adam-e2-r75|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=2 ROUNDS=75"
	"l256-adam-e2-cos75|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=2 ROUNDS=75 STRATEGY_SERVER_LR_DECAY=cosine"
	# The FedAvg paper's model in the same CPU budget: it costs 2.5 times L256 per window
	# (17.5 against 7 ms of CPU), so 30 rounds of 2 local epochs.
	"fedavg-adam-e2-cos30|shakespeare-lstm|FEDAVG TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=2 ROUNDS=30 STRATEGY_SERVER_LR_DECAY=cosine"
	# The FedAvg paper's model with the full-length recipe, in float32 layer math (the sim's
	# default since float32 landed: about twice as fast on the LSTM).
	"fedavg-adam-e2-r75|shakespeare-lstm|FEDAVG TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=2 ROUNDS=75"
	# The DP + secure aggregation variant of the full-length recipe: 5 steps of q = 0.4 a
	# round; σ = 2 keeps a client that trains in 9 of the 75 rounds (45 steps) within ε = 8.
	"dpsa-l256-adam-e2-r75|shakespeare-lstm|L256 TRAINING_OPTIMIZER=adam TRAINING_LR=0.003 TRAINING_BATCH_SIZE=16 TRAINING_EPOCHS=2 ROUNDS=75 DPSA DP_NOISE_MULTIPLIER=2"
)

# --list, $tmp, $bin and $selected (the candidates to run):
source "$(dirname "$0")/sweep-lib.sh"
text=$("$bin" data fetch shakespeare -o json | jq -r .shakespeare)

mkdir -p "$(dirname "$out")"
if [[ ! -s $out ]]; then
	cat >"$out" <<'EOF'
# Sweep: Shakespeare by role, the LEAF setting

Written by `scripts/sweep-shakespeare.sh` (see its header for the columns). Every run: tiny
Shakespeare with one client per speaking role (all 292 roles, 1 to 422 windows of 80
characters each, 11,707 in all), the loss on every position of a window, a fraction of the
roles sampled per round, seed 1, central evaluation on the whole test set (every role's
last 10% of lines: 1,401 windows). The base config is `examples/BASE.yaml` as of the
section's commit; "overrides" are the `CONFIDE_*` variables set on top, with the model
shapes FEDAVG (embedding 8, two LSTM layers of 256: the FedAvg paper's, 814,162
parameters), L256 (embedding 16, one layer of 256: 297,570) and L128 (embedding 16, one
layer of 128: 83,810), and DPSA (DP-SGD on every client with C = 1 and a budget of ε = 8 at
δ = 1e-5 that clients enforce by refusing tasks, secure aggregation K = 5, t = 3). Target:
test accuracy ≥ 0.50 within 15 minutes on 2 cores; the machine was shared, so the CPU
seconds and the parallel efficiency decide ("15 min": CPU s ≤ 1,800 × efficiency).
EOF
fi
{
	heading "" "rounds ${rounds:-as configured}"
	echo "| candidate | base | overrides | rounds | final acc | best acc (round) | first round ≥ $target | CPU s by then | worst ε | refused | wall s | CPU s | parallel eff. | 15 min |"
	echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
} >>"$out"

for c in "${selected[@]}"; do
	IFS='|' read -r name base overrides <<<"$c"
	vars=("CONFIDE_DATASET_PATH=$text")
	for kv in $overrides; do
		case $kv in
		FEDAVG) for v in "${fedavg_model[@]}"; do vars+=("CONFIDE_$v"); done ;;
		L256) for v in "${l256_model[@]}"; do vars+=("CONFIDE_$v"); done ;;
		L128) for v in "${l128_model[@]}"; do vars+=("CONFIDE_$v"); done ;;
		DPSA) for v in "${dpsa[@]}"; do vars+=("CONFIDE_$v"); done ;;
		*) vars+=("CONFIDE_$kv") ;;
		esac
	done
	args=(sim --config "examples/$base.yaml" -o json --no-plots)
	[[ -n $rounds ]] && args+=(--rounds "$rounds")
	for ((r = 1; r <= repeats; r++)); do
		res=$tmp/$name-$r
		if ! run_sim "$res" "$name (run $r/$repeats)" "$overrides"; then
			# An interrupted run (SIGINT) writes the rounds it completed: tabulate those.
			if ! grep -q interrupted "$res/stderr" || [[ ! -s $res/out/summary.json ]]; then
				echo "| $name | $base | ${overrides:-–} | – | failed: $(tail -n 1 "$res/stderr" | tr '|' '/') | | | | | | | | | |" >>"$out"
				continue
			fi
			cp "$res/out/summary.json" "$res/summary.json"
		fi
		csv=$res/out/rounds.csv
		[[ -n ${KEEP:-} ]] && mkdir -p "$KEEP" && cp "$csv" "$KEEP/$name-$r.csv"
		read -r wall user sys <"$res/time"
		cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')
		# rounds.csv's columns by their header names (refused, accuracy, elapsed_seconds).
		refused=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { s += $c["refused"] } END { print s + 0 }' "$csv")
		read -r first at < <(awk -F, -v t="$target" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
			$c["accuracy"] != "" && $c["accuracy"] + 0 >= t { print $1, $c["elapsed_seconds"]; exit }' "$csv") || true
		by=–
		[[ -n ${first:-} ]] && by=$(awk -v c="$cpu" -v a="$at" -v w="$wall" 'BEGIN { printf "%.0f", c * a / w }')
		jq -r --arg name "$name" --arg base "$base" --arg ov "${overrides:-–}" --arg refused "$refused" \
			--arg first "${first:-–}" --arg by "$by" --arg wall "$wall" --arg cpu "$cpu" \
			'def r(d): if . == null then "–" else (. * d | round / d | tostring) end;
			(.parallel_efficiency * 1800) as $fits |
			"| \($name) | \($base) | \($ov) | \(.rounds) | \(.final_accuracy | r(10000)) | \(.best_accuracy | r(10000)) (\(.best_round)) | \($first) | \($by) | \(.privacy.epsilon | r(1000)) | \($refused) | \($wall | tonumber | round) | \($cpu) | \(.parallel_efficiency | r(100)) | \(if ($cpu | tonumber) <= $fits then "yes" elif $by != "–" and ($by | tonumber) <= $fits then "at target" else "no" end) |"' \
			"$res/summary.json" >>"$out"
		tail -n 1 "$out" >&2
		first= at=
	done
done
