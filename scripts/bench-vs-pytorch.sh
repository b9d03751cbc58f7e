#!/usr/bin/env bash
# Training throughput of Confide against the PyTorch reference on this machine.
#
# Each pair (confide bench train, then the reference's same model) runs back to back, for
# every model and thread count, REPEATS times; the table gives the medians and the median
# of the per-pair ratios, so load that comes and goes on a shared machine hits both sides of
# a pair alike. Threads: GOMAXPROCS=N for Confide, torch.set_num_threads(N) with
# OPENBLAS_NUM_THREADS=1 for PyTorch (as ../shared/notes/performance-baselines.md measures).
# Both take the median of 7 timed runs of about --seconds each, after warm-up.
#
# Two rates per side:
#   wall  examples per second of elapsed time: what a user sees; on a loaded machine it
#         depends on how much CPU the process got.
#   cpu   examples per CPU-second of the process (all its threads): PyTorch's from the
#         process CPU clock around each timed run (the reference's timing loop, replicated
#         around its own step functions); Confide's as wall rate × elapsed / CPU time of the
#         whole command (warm-up and calibration run the same steps). Per core (1 thread)
#         it is the speed an idle core would give; at 2 threads it measures efficiency.
# Every pair runs in each of PRECISIONS on both sides (confide bench train --precision P,
# the reference's dtype P): float32, what PyTorch users train in, and float64.
# Then the DP-SGD/non-DP ratio of Confide's MLP and CNN at batch 256 (2 threads), in the
# first of PRECISIONS.
#
# Usage: scripts/bench-vs-pytorch.sh [repeats]
# Environment: REPEATS (3), THREADS ("2 1"), PRECISIONS ("float32 float64"), MODELS ("mlp lstm transformer cnn"),
# SECONDS_PER_RUN (1), DP (1: also the DP ratios; 0: skip), DP_MODELS ("mlp cnn"), PYTORCH_REFERENCE (default
# ../shared/bench/pytorch_reference.py from the repository root), PYTHON (an interpreter
# that can import torch; by default the first of python3 and Debian's /usr/bin/python3 that
# can). Without PyTorch the Confide side still runs and the ratios are left out. With PyTorch
# on the reference BLAS the script stops with a message saying what to install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

repeats=${1:-${REPEATS:-3}}
threads_list=${THREADS:-"2 1"}
precisions=${PRECISIONS:-"float32 float64"}
for p in $precisions; do
  case $p in
  float32 | float64) ;;
  *) echo "PRECISIONS: $p is not a precision (use float32 and/or float64)" >&2; exit 2 ;;
  esac
done
models=${MODELS:-"mlp lstm transformer cnn"}
dp_models=${DP_MODELS:-"mlp cnn"}
seconds=${SECONDS_PER_RUN:-1}
do_dp=${DP:-1}
ref=${PYTORCH_REFERENCE:-$root/../shared/bench/pytorch_reference.py}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/confide" ./cmd/confide

py=""
if [ -f "$ref" ]; then
  for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch' >/dev/null 2>&1; then
      py=$cand
      break
    fi
  done
fi
# PyTorch on Debian takes its BLAS from the libblas.so.3 alternative: the reference BLAS
# (libblas3 alone) is about 15x slower than OpenBLAS (libopenblas0-pthread), and every ratio
# against it would be a false win. Refuse to compare unless a matrix product in the reference's
# interpreter runs on OpenBLAS (the library mapped into the process after one product).
if [ -n "$py" ]; then
  blas=$(OPENBLAS_NUM_THREADS=1 "$py" -c '
import torch
a = torch.ones(64, 64, dtype=torch.float64); (a @ a).sum()
print(" ".join(sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower()})))' 2>/dev/null || true)
  case "$blas" in
  *openblas* | *mkl* | *MKL*) ;;
  *)
    echo "PyTorch runs on the reference BLAS (${blas:-no BLAS library mapped}), about 15x slower than OpenBLAS: ratios against it would be false wins, so none are printed. Install libopenblas0-pthread (apt-get install libopenblas0-pthread) and run again." >&2
    exit 1
    ;;
  esac
fi
if [ -z "$py" ]; then
  echo "PyTorch reference not available (need $ref and a python3 that imports torch; set PYTORCH_REFERENCE or PYTHON): Confide only." >&2
fi

# The reference's timing loop (bench_loop: 5 warm-up steps, step count calibrated to the
# target duration, RUNS timed runs), around its own models and steps, timing each run on the
# wall clock and the process CPU clock. Prints "wall_rate cpu_rate" (medians).
cat > "$tmp/torch_pair.py" <<'EOF'
import contextlib, io, statistics, sys, time
ref, bench, threads, dtype = sys.argv[1:5]
sys.argv = [ref, "(none)", threads, dtype]   # loads the reference without running a bench
ns = {"__name__": "pytorch_reference", "__file__": ref}
with contextlib.redirect_stdout(io.StringIO()):
    exec(compile(open(ref).read(), ref, "exec"), ns)

def bench_loop(step, batch, target_s=1.0):
    for _ in range(5): step()
    t0 = time.perf_counter(); n = 0
    while time.perf_counter() - t0 < 0.3: step(); n += 1
    steps = max(3, int(n * target_s / (time.perf_counter() - t0)))
    wall, cpu = [], []
    for _ in range(ns["RUNS"]):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps): step()
        wall.append(batch * steps / (time.perf_counter() - t0))
        cpu.append(batch * steps / (time.process_time() - c0))
    return statistics.median(wall), statistics.median(cpu)

ns["bench_loop"] = bench_loop
wall, cpu = ns["table"][bench]()
print(f"{wall:.1f} {cpu:.1f}")
EOF

# confide_rates THREADS ARGS... prints "wall_rate cpu_rate".
confide_rates() {
  local threads=$1
  shift
  local TIMEFORMAT='%R %U %S'
  { time GOMAXPROCS=$threads "$tmp/confide" bench train "$@" --runs 7 --seconds "$seconds" >"$tmp/out"; } 2>"$tmp/time"
  local rate
  rate=$(sed -n 's/.*median \([0-9.]*\) examples\/s.*/\1/p' "$tmp/out")
  awk -v r="$rate" '{ cpu = $2 + $3; printf "%.1f %.1f\n", r, (cpu > 0 ? r * $1 / cpu : 0) }' "$tmp/time"
}

# torch_rates BENCH THREADS PRECISION prints "wall_rate cpu_rate".
torch_rates() {
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$2 "$py" "$tmp/torch_pair.py" "$ref" "$1" "$2" "$3"
}

torch_bench() {
  case $1 in
  mlp) echo mlp ;;
  lstm) echo lstm128 ;;
  transformer) echo tfm ;;
  cnn) echo cnn ;;
  esac
}

results="$tmp/results" # model threads precision confide_wall confide_cpu torch_wall torch_cpu
: >"$results"
for r in $(seq 1 "$repeats"); do
  for model in $models; do
    for th in $threads_list; do
      for prec in $precisions; do
        read -r cw cc < <(confide_rates "$th" --model "$model" --precision "$prec")
        tw=0 tc=0
        if [ -n "$py" ]; then
          read -r tw tc < <(torch_rates "$(torch_bench "$model")" "$th" "$prec")
        fi
        echo "$model $th $prec $cw $cc $tw $tc" >>"$results"
        printf 'repeat %d  %-11s %d thr %s  confide %8.0f ex/s (%8.0f /cpu-s)' "$r" "$model" "$th" "$prec" "$cw" "$cc" >&2
        [ -n "$py" ] && printf '  pytorch %8.0f ex/s (%8.0f /cpu-s)' "$tw" "$tc" >&2
        echo >&2
      done
    done
  done
done

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
if [ -n "$py" ]; then
  echo "Confide vs PyTorch $("$py" -c 'import torch; print(torch.__version__)'), $repeats pairs each, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
else
  echo "Confide (PyTorch not available), $repeats runs each, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi
printf '%-12s %4s %-8s  %13s %13s %9s  %13s %13s %9s\n' model thr dtype "confide ex/s" "pytorch ex/s" "ratio" "confide /cpu" "pytorch /cpu" "ratio"
for model in $models; do
  for th in $threads_list; do
    for prec in $precisions; do
      sel() { awk -v m="$model" -v t="$th" -v p="$prec" '$1 == m && $2 == t && $3 == p' "$results"; }
      cw=$(sel | awk '{ print $4 }' | median)
      cc=$(sel | awk '{ print $5 }' | median)
      if [ -n "$py" ]; then
        tw=$(sel | awk '{ print $6 }' | median)
        tc=$(sel | awk '{ print $7 }' | median)
        rw=$(sel | awk '$6 > 0 { print $4 / $6 }' | median)
        rc=$(sel | awk '$7 > 0 { print $5 / $7 }' | median)
        printf '%-12s %4s %-8s  %13.0f %13.0f %8.2fx  %13.0f %13.0f %8.2fx\n' "$model" "$th" "$prec" "$cw" "$tw" "$rw" "$cc" "$tc" "$rc"
      else
        printf '%-12s %4s %-8s  %13.0f %13s %9s  %13.0f %13s %9s\n' "$model" "$th" "$prec" "$cw" - - "$cc" - -
      fi
    done
  done
done

if [ "$do_dp" = 1 ]; then
  echo
  dp_prec=${precisions%% *}
  for model in $dp_models; do
    : >"$tmp/dp"
    for r in $(seq 1 "$repeats"); do
      read -r nw nc < <(confide_rates 2 --model "$model" --batch 256 --precision "$dp_prec")
      read -r dw dc < <(confide_rates 2 --model "$model" --batch 256 --precision "$dp_prec" --dp)
      echo "$nw $nc $dw $dc" >>"$tmp/dp"
    done
    nw=$(awk '{ print $1 }' "$tmp/dp" | median)
    dw=$(awk '{ print $3 }' "$tmp/dp" | median)
    rw=$(awk '$1 > 0 { print $3 / $1 }' "$tmp/dp" | median)
    rc=$(awk '$2 > 0 { print $4 / $2 }' "$tmp/dp" | median)
    printf 'Confide %s %s batch 256, 2 threads: non-DP %.0f ex/s, DP-SGD %.0f ex/s: DP/non-DP %.2fx (per CPU-second %.2fx)\n' "$model" "$dp_prec" "$nw" "$dw" "$rw" "$rc"
  done
fi
