#!/usr/bin/env bash
# bench/contention.sh — the host backend on a shared machine, idle and beside 1 and 2 competing
# CPU-bound processes that this script starts and stops itself (each bounded by `timeout`):
#   - one Fashion-MNIST epoch of examples/mnist_mlp (batch 128), the default threads and one
#     thread, in samples/s;
#   - the fused element-wise kernel of bench/elementwise.cpp (y = a*b + c*2 - relu(d), 2^22
#     floats), in GB/s as that benchmark counts it;
#   - with PyTorch importable, under the same load in the same pass: its MLP training step
#     (bench/mlp_train_torch.py, eager, batch 128) and the same element-wise expression
#     (bench/elementwise_torch.py), both on the same thread count.
# Runs are interleaved and the median of --runs is printed per row, with the slowdown against idle.
#
# usage: bash bench/contention.sh [--build DIR] [--runs N] [--baseline DIR]
#   --baseline DIR: another build (e.g. an older commit) whose mnist_mlp is measured alongside.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/default runs=7 baseline=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--runs N] [--baseline DIR]" >&2; exit 2 ;;
  esac
done
bin="$build/examples/mnist_mlp"
[ -x "$bin" ] || { echo "contention: $bin not built (cmake --build --preset examples)" >&2; exit 1; }
threads=$(nproc)
has_torch=0
python3 -c "import torch" 2>/dev/null && has_torch=1

ew="$build/bench/bench_elementwise"
[ -x "$ew" ] || { echo "contention: $ew not built (cmake --build build/default --target bench_elementwise)" >&2; exit 1; }
ew_args="--min-log2 22 --max-log2 22 --reps 5 --budget 0.2 --passes 1 --no-eigen --no-check"

# variant name | unit | command: one epoch ("... (N samples/s)"), one bench_elementwise row, or a
# PyTorch RESULT line
variants=("fusegrad MLP epoch, $threads threads|samples/s|$bin --epochs 1"
          "fusegrad MLP epoch, 1 thread|samples/s|env FG_NUM_THREADS=1 $bin --epochs 1")
[ -n "$baseline" ] && variants+=("baseline MLP epoch ($baseline)|samples/s|$baseline/examples/mnist_mlp --epochs 1")
[ "$has_torch" = 1 ] && variants+=("PyTorch eager MLP step, batch 128, $threads threads|samples/s|python3 bench/mlp_train_torch.py --device cpu --batches 128 --budget 0.5 --no-compile --threads $threads")
variants+=("fusegrad fused element-wise, $threads threads|GB/s|$ew $ew_args"
           "fusegrad fused element-wise, 1 thread|GB/s|env FG_NUM_THREADS=1 $ew $ew_args")
[ "$has_torch" = 1 ] && variants+=("PyTorch eager element-wise, $threads threads|GB/s|python3 bench/elementwise_torch.py --threads $threads")

# the rate of one run of a variant's command
measure() {
  local out
  out=$($1 2>&1) || true
  if [[ "$out" == *"RESULT batch="* ]]; then  # torch MLP: ms per step of 128 samples
    echo "$out" | sed -n 's/.*RESULT batch=128 eager_ms=\([0-9.]*\).*/\1/p' | awk '{printf "%d\n", 128000 / $1}'
  elif [[ "$out" == *"RESULT n="* ]]; then  # torch element-wise
    echo "$out" | sed -n 's/.*RESULT n=.* gbs=\([0-9.]*\).*/\1/p'
  elif [[ "$out" == *"fused GB/s"* ]]; then  # bench_elementwise: the bandwidth table's fused column
    echo "$out" | awk -F'|' '/fused GB\/s/ {t = 1; next} t && $2 ~ /2\^/ {gsub(/ /, "", $3); print $3; exit}'
  else
    echo "$out" | sed -n 's/^epoch 1\/1:.*(\([0-9]*\) samples\/s)$/\1/p'
  fi
}

echo "# contention: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads cores, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), median of $runs"
echo
echo "| variant | competing processes | rate | unit | slowdown vs idle |"
echo "| --- | ---: | ---: | --- | ---: |"
declare -A idle
for load in 0 1 2; do
  pids=()
  for ((i = 0; i < load; i++)); do
    timeout 600 sh -c 'while :; do :; done' &
    pids+=($!)
  done
  sleep 0.5
  declare -A samples=()
  for ((r = 0; r < runs; r++)); do
    for v in "${variants[@]}"; do
      samples[$v]+=" $(measure "${v#*|*|}")"
    done
  done
  for v in "${variants[@]}"; do
    median=$(echo ${samples[$v]} | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print (NR ? a[int((NR + 1) / 2)] : 0)}')
    [ "$load" = 0 ] && idle[$v]=$median
    slow=$(awk -v i="${idle[$v]}" -v m="$median" 'BEGIN {printf (m > 0 ? "%.2fx" : "-"), i / m}')
    unit=${v#*|}
    echo "| ${v%%|*} | $load | $median | ${unit%%|*} | $slow |"
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
done
if [ "$has_torch" != 1 ]; then
  echo
  echo "(PyTorch not importable: its rows are missing; pip install torch to add them)"
fi
