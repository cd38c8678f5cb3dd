#!/usr/bin/env bash
# tests/static/check_kernels.sh NVCC INCLUDE_DIR WORK_DIR [ARCH] — static checks of the CUDA code
# generation that need no GPU (CTest `cuda_static_kernels`):
#   1. every vectorised element-wise kernel (for_each_lanes_kernel) stores whole 64/128-bit words
#      (st.global.v4 / .v2) and, where it loads memory, loads whole words (ld.global.v4 / .v2);
#   2. ptxas reports no spill stores, no spill loads and no stack frame (local memory) for any
#      kernel of tests/static/kernels.cu (element-wise, reductions, gradients, Adam).
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
if grep -E "bytes stack frame" "$report" | grep -vq "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"; then
  echo "kernels with local memory or spills:"
  grep -B2 -E "[1-9][0-9]* bytes (stack frame|spill)" "$report" | grep -o "_Z[A-Za-z0-9_]*" | sort -u |
    (command -v c++filt >/dev/null && c++filt || cat) | cut -c1-300
  status=1
fi
[ "$kernels" -ge 50 ] || { echo "expected at least 50 kernels from kernels.cu"; status=1; }
[ $status = 0 ] && echo "static kernel checks passed"
exit $status
