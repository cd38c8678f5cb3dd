#!/usr/bin/env bash
# tests/static/check_kernels.sh NVCC INCLUDE_DIR WORK_DIR [ARCH] — static checks of the CUDA code
# generation that need no GPU (CTest `cuda_static_kernels`):
#   1. every vectorised element-wise kernel (for_each_lanes_kernel) stores whole 64/128-bit words
#      (st.global.v4 / .v2) and, where it loads memory, loads whole words (ld.global.v4 / .v2);
#   2. ptxas reports no spill stores, no spill loads and no stack frame (local memory) for any
#      kernel of tests/static/kernels.cu (element-wise, reductions, gradients, Adam), except the
#      small frame CUDA's sin/cos/tan keep for large arguments.
set -euo pipefail
nvcc=$1
include=$2
work=$3
arch=${4:-90}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
ptx="$work/kernels.ptx"
"$nvcc" -std=c++20 --expt-relaxed-constexpr -O3 -arch=sm_"$arch" -I"$include" -x cu -ptx \
  "$here/kernels.cu" -o "$ptx"
status=0

# 1. Vector loads and stores in the lanes kernels.
awk '
  /\.entry / { name = $3; sub(/\(.*/, "", name); lanes = (name ~ /for_each_lanes_kernel/); vst = 0; vld = 0; sld = 0; next }
  lanes && /st\.global[.a-z]*\.v[24]\./ { vst = 1 }
  lanes && /ld\.global[.a-z]*\.v[24]\./ { vld = 1 }
  lanes && /ld\.global[.a-z]*\.[bsuf][0-9]+ / { sld = 1 }
  lanes && /^}/ {
    count++
    if (!vst) { print "no vector store in " name; bad++ }
    if (sld && !vld) { print "scalar loads only in " name; bad++ }
    lanes = 0
  }
  END {
    print count " vectorised element-wise kernels checked"
    if (count < 5) { print "expected at least 5 lanes kernels in kernels.cu"; bad++ }
    exit bad > 0
  }' "$ptx" || status=1

# 2. No spills, no local memory.
report="$work/ptxas.txt"
"$(dirname "$nvcc")/ptxas" -arch=sm_"$arch" -O3 -v "$ptx" -o "$work/kernels.cubin" 2>"$report" || {
  cat "$report"; exit 1; }
kernels=$(grep -c "bytes stack frame" "$report" || true)
echo "$kernels kernels compiled by ptxas"
# A stack frame without spills is allowed only where the tree calls sin/cos/tan: CUDA's own
# argument reduction for large arguments keeps a small array on the stack.
awk '
  /Function properties for / { name = $NF; next }
  /bytes stack frame/ {
    frame = $1; spills = $5 + $9
    trig = (name ~ /3(sin|cos|tan)E/)
    if (spills > 0 || (frame > 0 && !trig)) { print name; bad++ }
  }
  END { exit bad > 0 }' "$report" >"$work/offenders.txt" || {
  echo "kernels with local memory or spills:"
  (command -v c++filt >/dev/null && c++filt <"$work/offenders.txt" || cat "$work/offenders.txt") | cut -c1-300
  status=1
}
[ "$kernels" -ge 50 ] || { echo "expected at least 50 kernels from kernels.cu"; status=1; }
[ $status = 0 ] && echo "static kernel checks passed"
exit $status
