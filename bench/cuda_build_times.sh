#!/usr/bin/env bash
# bench/cuda_build_times.sh [BUILD_DIR] [OUT_CSV] — nvcc time per CUDA test translation unit, the
# units tests/CMakeLists.txt generates in a configured CUDA build tree (BUILD_DIR/tests/cuda/*.cu;
# default build/default: `cmake --preset default` with nvcc found), with the Release flags of the
# default preset. Prints one row per unit: wall and CPU seconds, and the share nvcc's --time
# attributes to ptxas and to cicc (the device front end) and the host compiler.
# Serial, one unit at a time; CPU seconds are the figure to compare across machines and loads.
# UNITS="test_autodiff light_tests_a" limits the run to those units. A unit that fails to compile
# stops the script with nvcc's messages.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build/default}" && pwd)
out=${2:-/dev/stdout}
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
units=("$build"/tests/cuda/*.cu)
[ -f "${units[0]}" ] || { echo "no CUDA test units in $build/tests/cuda (configure it with nvcc: cmake --preset default)" >&2; exit 1; }
flags=(-std=c++20 --expt-relaxed-constexpr -O3 -DNDEBUG
       --generate-code=arch=compute_90,code=[compute_90,sm_90]
       -I"$src/include" -I"$src/tests" -DFG_HAVE_CBLAS=1 -DFG_HAVE_ZLIB=1)
echo "unit,wall_s,cpu_s,cicc_s,ptxas_s,host_s" >"$out"
for unit in "${units[@]}"; do
  name=$(basename "$unit" .cu)
  if [ -n "${UNITS:-}" ] && [[ " $UNITS " != *" $name "* ]]; then
    continue
  fi
  rm -f "$work/time.csv"
  start=$(date +%s.%N)
  /usr/bin/time -o "$work/cpu.txt" -f "%U %S" "$nvcc" "${flags[@]}" --time "$work/time.csv" -c "$unit" \
    -o "$work/$name.o" || { echo "$name: nvcc failed" >&2; exit 1; }
  cpu=$(cat "$work/cpu.txt")
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  phase() { awk -F' , ' -v p="$1" 'NR > 1 && $2 ~ p { s += $7 } END { printf "%.1f", s / 1000 }' "$work/time.csv"; }
  printf '%s,%.1f,%.1f,%s,%s,%s\n' "$name" "$wall" "$(echo "$cpu" | awk '{print $1 + $2}')" \
    "$(phase cicc)" "$(phase ptxas)" "$(phase 'gcc|cudafe')" >>"$out"
done
