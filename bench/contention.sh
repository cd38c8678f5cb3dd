#!/usr/bin/env bash
# bench/contention.sh — the host backend on a shared machine: one Fashion-MNIST epoch of
# examples/mnist_mlp (batch 128, the default threads and one thread), idle and beside 1 and 2
# competing CPU-bound processes that this script starts and stops itself (each bounded by
# `timeout`). Runs are interleaved and the median of --runs is printed per row, with the
# slowdown against idle. With PyTorch importable, its MLP training step (bench/mlp_train_torch.py,
# CPU, the same thread count) runs under the same load in the same pass.
#
# usage: bash bench/contention.sh [--build DIR] [--runs N] [--baseline DIR]
#   --baseline DIR: another build of mnist_mlp (e.g. an older commit) measured alongside.
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

# variant name | command (one epoch; prints "... (N samples/s)" or a torch RESULT line)
variants=("fusegrad, $threads threads|$bin --epochs 1"
          "fusegrad, 1 thread|env FG_NUM_THREADS=1 $bin --epochs 1")
[ -n "$baseline" ] && variants+=("baseline $baseline|$baseline/examples/mnist_mlp --epochs 1")
[ "$has_torch" = 1 ] && variants+=("PyTorch eager step, batch 128|python3 bench/mlp_train_torch.py --device cpu --batches 128 --budget 0.5 --no-compile --threads $threads")

# samples/s of one run of a variant's command
measure() {
  local out
  out=$($1 2>&1) || true
  if [[ "$out" == *RESULT* ]]; then  # torch: ms per step of 128 samples
    echo "$out" | sed -n 's/.*RESULT batch=128 eager_ms=\([0-9.]*\).*/\1/p' | awk '{printf "%d\n", 128000 / $1}'
  else
    echo "$out" | sed -n 's/^epoch 1\/1:.*(\([0-9]*\) samples\/s)$/\1/p'
  fi
}

echo "# contention: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads cores, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), median of $runs"
echo
echo "| variant | competing processes | samples/s | slowdown vs idle |"
echo "| --- | ---: | ---: | ---: |"
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
      samples[$v]+=" $(measure "${v#*|}")"
    done
  done
  for v in "${variants[@]}"; do
    median=$(echo ${samples[$v]} | tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR ? a[int((NR + 1) / 2)] : 0)}')
    [ "$load" = 0 ] && idle[$v]=$median
    slow=$(awk -v i="${idle[$v]}" -v m="$median" 'BEGIN {printf (m > 0 ? "%.2fx" : "-"), i / m}')
    echo "| ${v%%|*} | $load | $median | $slow |"
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
done
if [ "$has_torch" != 1 ]; then
  echo
  echo "(PyTorch not importable: its rows are missing; pip install torch to add them)"
fi
