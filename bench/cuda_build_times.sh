#!/usr/bin/env bash
# bench/cuda_build_times.sh [SOURCE_DIR] [OUT_CSV] — nvcc time per CUDA test translation unit, the
# way tests/CMakeLists.txt groups them (each heavy test alone, the light ones in one unit), with the
# Release flags of the default preset. Prints one row per unit: wall and CPU seconds, and the
# share nvcc's --time attributes to ptxas and to cicc (the device front end) and the host compiler.
# Serial, one unit at a time; CPU seconds are the figure to compare across machines and loads.
# UNITS="test_autodiff all_tests" limits the run to those units. A unit that fails to compile
# stops the script with nvcc's messages.
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/..}" && pwd)
out=${2:-/dev/stdout}
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
heavy=(test_autodiff test_autodiff_models test_autodiff_reduce test_train test_var)
light=""
for f in "$src"/tests/test_*.cpp; do
  name=$(basename "$f" .cpp)
  if [[ " ${heavy[*]} " == *" $name "* ]]; then
    echo "#include \"$f\"" >"$work/$name.cu"
  else
    light+="#include \"$f\""$'\n'
  fi
done
printf '%s' "$light" >"$work/all_tests.cu"
flags=(-std=c++20 --expt-relaxed-constexpr -O3 -DNDEBUG
       --generate-code=arch=compute_90,code=[compute_90,sm_90]
       -I"$src/include" -I"$src/tests" -DFG_HAVE_CBLAS=1 -DFG_HAVE_ZLIB=1)
echo "unit,wall_s,cpu_s,cicc_s,ptxas_s,host_s" >"$out"
for unit in "$work"/*.cu; do
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
