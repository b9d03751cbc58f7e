#!/usr/bin/env bash
# Sweep of CNN recipes for Fashion-MNIST federated with DP-SGD and secure aggregation,
# against the MLP default (examples/fashion-mnist.yaml), for issue 15's acceptance item:
# "confide sim with the CNN on Fashion-MNIST (Dirichlet 0.5, DP + secure aggregation) beats
# the MLP default's accuracy at the same ε".
#
# Every candidate is a base config from examples/ plus CONFIDE_* environment overrides (the
# keys of docs/config.md), so the table's "overrides" column is the whole difference. All
# keep the privacy setting of the examples: 100 clients, Dirichlet(0.5), seed 1, DP-SGD on
# every client with budget ε = 8 at δ = 1e-5 (clients refuse tasks past it; since commit
# 70f85be the server samples only clients with room for the round's task, so none is
# refused and rounds keep their 10 clients while enough have room), secure aggregation
# K = 5, t = 3. DP noise comes from crypto/rand (dp.deterministic_noise off), so two runs of
# one candidate differ: use REPEATS > 1 to see the spread.
#
# Each finished run appends one row to the table of this invocation in OUT (a section with
# the date, the machine's cores and the round override), so a long sweep can be committed as
# it grows. Columns: final and best central test accuracy (round of the best), the mean of
# the last 10 evaluations (less sensitive to one noisy round), worst and mean client ε from
# the clients' ledgers (the summary's privacy.epsilon and epsilon_mean), tasks refused on the
# privacy budget over the run, wall and CPU seconds of the sim process.
#
# Usage: scripts/sweep-fashion-cnn.sh [CANDIDATE...]     (default: every candidate)
#        scripts/sweep-fashion-cnn.sh --list
# Environment:
#   ROUNDS   override every candidate's rounds (short pruning runs; empty: the config's)
#   REPEATS  runs of each candidate (default 1)
#   OUT      the markdown table to append to (default docs/sweeps/fashion-mnist-cnn.md)
#   NOTE     a line written under the section heading
#   CONFIDE_BIN  a prebuilt confide binary (default: built into a temporary directory)
#   THREADS  GOMAXPROCS of the sim (default 2)
# Runs are sequential and niced (nice -n 19): the sims are CPU-heavy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out=${OUT:-docs/sweeps/fashion-mnist-cnn.md}
repeats=${REPEATS:-1}
rounds=${ROUNDS:-}
threads=${THREADS:-2}

# The reference CNN of examples/fashion-mnist-cnn.yaml before this sweep (pytorch_reference.py's
# cnn, Papernot et al. 2021): 26,010 parameters.
ref_conv='[{filters: 16, kernel: 8, stride: 2, padding: 3, pool: max, pool_size: 2, pool_stride: 1}, {filters: 32, kernel: 4, stride: 2, pool: max, pool_size: 2, pool_stride: 1}]'
# The same with GroupNorm (4 groups) after each convolution, before the activation.
gn_conv='[{filters: 16, kernel: 8, stride: 2, padding: 3, groups: 4, pool: max, pool_size: 2, pool_stride: 1}, {filters: 32, kernel: 4, stride: 2, groups: 4, pool: max, pool_size: 2, pool_stride: 1}]'
# Half the filters (8 and 16): 11,138 parameters.
small_conv='[{filters: 8, kernel: 8, stride: 2, padding: 3, pool: max, pool_size: 2, pool_stride: 1}, {filters: 16, kernel: 4, stride: 2, pool: max, pool_size: 2, pool_stride: 1}]'

# SCAT, an override word of its own: ScatterNet features (Tramèr & Boneh 2021), the
# scattering transform J = 2, L = 8 of the 28×28 images (81 channels of 7×7) with GroupNorm
# over 27 groups, as examples/mnist-scattering.yaml.
scat_features=(MODEL_FEATURES_TYPE=scattering MODEL_FEATURES_J=2 MODEL_FEATURES_L=8 MODEL_FEATURES_SHAPE=[28,28] MODEL_FEATURES_NORM=group MODEL_FEATURES_GROUPS=27)

# CNN, an override word of its own: the MLP default's config with the cnn type and hidden
# [32] (with a conv spec, the CNN on raw pixels that examples/fashion-mnist-cnn.yaml was
# until the ScatterNet runs of 2026-12-06; since then that file holds the CNN on ScatterNet
# features: a 1×1 conv to 16 channels, a 3×3 conv to 32, each with GroupNorm of 4 groups,
# max-pool 2, hidden [32], 15,626 parameters).
cnn_raw=(MODEL_TYPE=cnn MODEL_HIDDEN=[32])

# Candidates: NAME|BASE (examples/BASE.yaml)|overrides (space-separated KEY=VALUE of CONFIDE_
# variables, without the prefix; values may not contain '|'). Overrides are applied with
# env, so a value with spaces must be one word of the list: conv specs go through the
# CONV_* placeholders below.
candidates=(
	"mlp|fashion-mnist|"
	"cnn-ref|fashion-mnist|CNN MODEL_CONV=REF"
	"cnn-gn|fashion-mnist|CNN MODEL_CONV=GN"
	"cnn-small|fashion-mnist|CNN MODEL_CONV=SMALL"
	"cnn-c20e1|fashion-mnist|CNN MODEL_CONV=REF CLIENTS_PER_ROUND=20 TRAINING_EPOCHS=1"
	"cnn-gn-c20e1|fashion-mnist|CNN MODEL_CONV=GN CLIENTS_PER_ROUND=20 TRAINING_EPOCHS=1"
	# 20 clients a round, 2 local steps (epochs 1 at q = 0.85), each client sampled twice as
	# often: the same ε as 10 clients × 4 steps. Two steps of momentum SGD move about a third
	# as far as four, so the server scales the mean update by 3 (fedavgm without momentum).
	"cnn-c20e1-slr3|fashion-mnist|CNN MODEL_CONV=REF CLIENTS_PER_ROUND=20 TRAINING_EPOCHS=1 STRATEGY_NAME=fedavgm STRATEGY_SERVER_LR=3 STRATEGY_MOMENTUM=0"
	"cnn-gn-c20e1-slr3|fashion-mnist|CNN MODEL_CONV=GN CLIENTS_PER_ROUND=20 TRAINING_EPOCHS=1 STRATEGY_NAME=fedavgm STRATEGY_SERVER_LR=3 STRATEGY_MOMENTUM=0"
	# The other way: 5 clients a round, 8 local steps (epochs 6), each client sampled half as
	# often: again 40 steps of a client over 100 rounds (ε ≈ 8).
	"cnn-c5e6|fashion-mnist|CNN MODEL_CONV=REF CLIENTS_PER_ROUND=5 TRAINING_EPOCHS=6"
	"cnn-gn-c5e6|fashion-mnist|CNN MODEL_CONV=GN CLIENTS_PER_ROUND=5 TRAINING_EPOCHS=6"
	"cnn-avgm|fashion-mnist|CNN MODEL_CONV=REF STRATEGY_NAME=fedavgm STRATEGY_SERVER_LR=0.2 STRATEGY_MOMENTUM=0.9"
	"cnn-adam|fashion-mnist|CNN MODEL_CONV=REF STRATEGY_NAME=fedadam STRATEGY_SERVER_LR=0.01 STRATEGY_TAU=0.001"
	# On ScatterNet features: the CNN, and for an honest comparison the MLP default (hidden
	# [64]) and a linear classifier (hidden [], examples/mnist-scattering.yaml's model) on the
	# same features.
	"cnn-scat|fashion-mnist-cnn|"
	"mlp-scat|fashion-mnist|SCAT"
	"linear-scat|fashion-mnist|SCAT MODEL_HIDDEN=[] TRAINING_LR=1"
)

# --list, $tmp, $bin and $selected (the candidates to run):
source "$(dirname "$0")/sweep-lib.sh"

mkdir -p "$(dirname "$out")"
if [[ ! -s $out ]]; then
	cat >"$out" <<'EOF'
# Sweep: a CNN against the MLP on federated Fashion-MNIST with DP-SGD and secure aggregation

Written by `scripts/sweep-fashion-cnn.sh` (see its header for the columns). Every run: 100
clients, Dirichlet(0.5) label skew, seed 1, DP-SGD on every client with a budget of ε = 8
at δ = 1e-5 (a client refuses tasks that would take it past), secure aggregation K = 5,
t = 3, central evaluation on the 10,000 test images every round. The base configs are
`examples/fashion-mnist.yaml` (mlp) and `examples/fashion-mnist-cnn.yaml` (cnn) as of the
section's commit; "overrides" are the `CONFIDE_*` variables set on top, where the conv
specs are: REF, the reference CNN (conv 16×8×8 stride 2 padding 3 + max-pool 2 stride 1,
conv 32×4×4 stride 2 + max-pool 2 stride 1; with hidden [32], 26,010 parameters); GN, the
same with GroupNorm of 4 groups after each convolution (26,106); SMALL, half the filters
(8 and 16; 11,138); SCAT, ScatterNet features (the scattering transform J = 2, L = 8, 81
channels of 7×7, GroupNorm of 27 groups; cnn-scat's conv blocks read that map). DP noise is
drawn from crypto/rand, so repeated runs of one candidate differ; client sampling is
seeded, so candidates with the same clients per round and steps per task spend the same ε.
The MLP default (hidden [64], 50,890 parameters) is the mlp row. Wall time includes the
time the sim sat stopped or starved on a shared machine; CPU seconds (user + system of the
sim) are the cost.
EOF
fi
{
	heading "" "rounds ${rounds:-as configured}"
	echo "| candidate | base | overrides | rounds | final acc | best acc (round) | mean acc last 10 | worst ε | mean ε | refused | wall s | CPU s |"
	echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >>"$out"

for c in "${selected[@]}"; do
	IFS='|' read -r name base overrides <<<"$c"
	vars=()
	for kv in $overrides; do
		case $kv in
		SCAT) words=("${scat_features[@]}") ;;
		CNN) words=("${cnn_raw[@]}") ;;
		*) words=() ;;
		esac
		if ((${#words[@]})); then
			for f in "${words[@]}"; do
				vars+=("CONFIDE_$f")
			done
			continue
		fi
		k=${kv%%=*} v=${kv#*=}
		case $v in
		REF) v=$ref_conv ;;
		GN) v=$gn_conv ;;
		SMALL) v=$small_conv ;;
		esac
		vars+=("CONFIDE_$k=$v")
	done
	args=(sim --config "examples/$base.yaml" --no-plots -o json)
	[[ -n $rounds ]] && args+=(--rounds "$rounds")
	for ((r = 1; r <= repeats; r++)); do
		res=$tmp/$name-$r
		if ! run_sim "$res" "$name (run $r/$repeats)" "$overrides"; then
			echo "| $name | $base | ${overrides:-–} | – | failed: $(tail -n 1 "$res/stderr" | tr '|' '/') | | | | | | | |" >>"$out"
			continue
		fi
		csv=$(find "$res/out" -name rounds.csv | head -n 1)
		read -r wall user sys <"$res/time"
		# rounds.csv: refused is column 7, accuracy column 9.
		refused=$(awk -F, 'NR > 1 { s += $7 } END { print s + 0 }' "$csv")
		last10=$(awk -F, 'NR > 1 && $9 != "" { a[n++] = $9 } END { s = 0; k = 0; for (i = (n > 10 ? n - 10 : 0); i < n; i++) { s += a[i]; k++ } printf "%.4f", (k ? s / k : 0) }' "$csv")
		jq -r --arg name "$name" --arg base "$base" --arg ov "${overrides:-–}" --arg refused "$refused" \
			--arg last10 "$last10" --arg wall "$wall" --arg cpu "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')" \
			'"| \($name) | \($base) | \($ov) | \(.rounds) | \(.final_accuracy | .*10000 | round / 10000) | \(.best_accuracy | .*10000 | round / 10000) (\(.best_round)) | \($last10) | \(.privacy.epsilon | .*1000 | round / 1000) | \(.privacy.epsilon_mean | .*1000 | round / 1000) | \($refused) | \($wall | tonumber | round) | \($cpu) |"' \
			"$res/summary.json" >>"$out"
		tail -n 1 "$out" >&2
	done
done
