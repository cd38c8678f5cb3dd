#!/usr/bin/env bash
# bench/gpu/prepare.sh — builds every CUDA test and benchmark (Release, sm_90) and gathers them,
# with what they need at run time that a bare GPU machine lacks, into one folder for
# bench/gpu/run.sh. Runs on the build machine; needs nvcc, no GPU.
#
#   bash bench/gpu/prepare.sh [BUNDLE]      BUNDLE: gpu-bundle/ at the repository root by default
#
#   FG_BUILD_DIR       build tree (default build/default, the test workflow's: `cmake --preset
#                      default`, configured here if it is not yet). Up to date after the test
#                      workflow, so the build step below only checks and links nothing.
#   FG_BUNDLE_MAX_MIB  size limit of one bundle folder (default 64, what one device call carries).
#                      Over it, the largest gzipped binary is cut in two: its first part stays in
#                      BUNDLE/bin/NAME.gz.1, the rest goes to BUNDLE-2/bin/NAME.gz.2 (carried by a
#                      second call; run.sh joins them). Over the limit even so, this script fails
#   FUSEGRAD_DATA      Fashion-MNIST (the four IDX files, raw or .gz) if not in ./data/mnist or
#                      /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)
#
# The bundle:
#   run.sh, mlp_train_torch.py,    the runner and bench_mlp_train's PyTorch peer (with the
#   train_peer.py, torch_timing.py the helpers it imports)
#   bin/*.gz                       fusegrad_tests_cuda, bench_<name>_cuda: stripped and gzipped
#                                  (run.sh unpacks them). The test executable alone is ~60 MiB
#                                  stripped (36 MiB of it device code: sm_90 SASS and compute_90
#                                  PTX, which do not compress), ~38 MiB gzipped.
#   lib/                           shared libraries the binaries load that are neither the C/C++
#                                  runtime nor CUDA's (the GPU machine has those)
#   data/<dataset>/                Fashion-MNIST for bench_mlp_train_cuda's epoch, only if it fits
#                                  under the limit (29 MiB; otherwise run.sh makes random data of
#                                  the same shapes: the epoch costs the same)
#   COMMIT, BUILD-INFO             what was built, from which commit, with which nvcc
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Paths given by the caller are relative to where it stands; the defaults to the repository root.
absolute() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
bundle=$(absolute "${1:-$root/gpu-bundle}")
build=$(absolute "${FG_BUILD_DIR:-$root/build/default}")
user_data=""
[ -z "${FUSEGRAD_DATA:-}" ] || user_data=$(absolute "$FUSEGRAD_DATA")
cd "$root"

[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
if ! command -v nvcc >/dev/null 2>&1; then
  echo "no nvcc: nothing to bundle"
  exit 0
fi

max_mib=${FG_BUNDLE_MAX_MIB:-64}
die() { echo "prepare.sh: $*" >&2; exit 1; }

# ---- the targets: the CUDA test executable and bench_<name>_cuda for bench/CMakeLists.txt's list ----
benches=$(sed -n 's/^set(FUSEGRAD_BENCHES \(.*\))$/\1/p' bench/CMakeLists.txt)
[ -n "$benches" ] || die "no 'set(FUSEGRAD_BENCHES ...)' line in bench/CMakeLists.txt"
targets=(fusegrad_tests_cuda)
for name in $benches; do
  targets+=("bench_${name}_cuda")
done

# ---- build (a no-op after the test workflow) ----
if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "== configuring $build (cmake --preset default)"
  cmake --preset default -B "$build" >/dev/null
fi
cache="$build/CMakeCache.txt"
grep -q '^CMAKE_BUILD_TYPE:[A-Z]*=Release$' "$cache" ||
  die "$build is not a Release build (CMAKE_BUILD_TYPE in $cache): the benchmarks must be"
grep -q '^CMAKE_CUDA_COMPILER:[A-Z]*=.*nvcc' "$cache" ||
  die "$build was configured without CUDA (FUSEGRAD_CUDA=OFF, or no nvcc then); reconfigure it: cmake --preset default -B $build -DFUSEGRAD_CUDA=ON"

# The built file of each target (single-config generators put it in the source folder's mirror).
binary_of() {
  local dir=tests
  [[ $1 == bench_* ]] && dir=bench
  echo "$build/$dir/$1"
}
declare -A before
for t in "${targets[@]}"; do
  before[$t]=$(stat -c %Y "$(binary_of "$t")" 2>/dev/null || echo missing)
done
echo "== building ${targets[*]} in $build"
start=$(date +%s)
cmake --build "$build" --target "${targets[@]}" -j "${FG_JOBS:-2}" >"$build/gpu-prepare-build.log" 2>&1 ||
  { tail -n 40 "$build/gpu-prepare-build.log" >&2; die "build failed (log: $build/gpu-prepare-build.log)"; }
rebuilt=()
for t in "${targets[@]}"; do
  [ -x "$(binary_of "$t")" ] || die "built $t, but $(binary_of "$t") is not there"
  [ "${before[$t]}" = "$(stat -c %Y "$(binary_of "$t")")" ] || rebuilt+=("$t")
done
echo "== build: $(( $(date +%s) - start )) s; $( ((${#rebuilt[@]})) && echo "built or relinked: ${rebuilt[*]}" || echo "all ${#targets[@]} targets were up to date")"

# ---- assemble ----
case "$bundle" in
  /|.|..|"$root"|"$root/") die "refusing to use '$bundle' as the bundle folder" ;;
esac
if [ -d "$bundle" ] && [ -n "$(ls -A "$bundle")" ] && [ ! -f "$bundle/BUILD-INFO" ]; then
  die "$bundle exists and is not a bundle (no BUILD-INFO): not overwriting it"
fi
bundle2="$bundle-2"  # second parts of binaries too large for one folder (see FG_BUNDLE_MAX_MIB)
rm -rf "$bundle" "$bundle2"
mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/data"

have_cuobjdump=0
command -v cuobjdump >/dev/null 2>&1 && have_cuobjdump=1
for t in "${targets[@]}"; do
  cp "$(binary_of "$t")" "$bundle/bin/$t"
  strip --strip-all "$bundle/bin/$t"
  if ((have_cuobjdump)); then
    cubins=$(cuobjdump --list-elf "$bundle/bin/$t" 2>/dev/null || true)
    [[ $cubins == *sm_90* ]] || die "$t holds no sm_90 code (CMAKE_CUDA_ARCHITECTURES of $build must include 90)"
  fi
done
# Without cuobjdump: the architectures the tree was configured for (90 unless set; CMakeLists.txt).
archs=$(sed -n 's/^CMAKE_CUDA_ARCHITECTURES:[A-Z]*=//p' "$cache")
[[ -z $archs || ";$archs;" == *";90"[-\;a]* ]] ||
  die "$build builds for CUDA architectures '$archs', without sm_90 (reconfigure with -DCMAKE_CUDA_ARCHITECTURES=90)"

# Shared libraries: everything ldd resolves except the C/C++ runtime (on every Linux machine) and
# CUDA's own libraries (the GPU machine's driver, runtime and cuBLAS must match it anyway).
is_provided() {
  case "$1" in
    linux-vdso.so* | ld-linux* | libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | \
      libutil.so* | libresolv.so* | libstdc++.so* | libgcc_s.so*) return 0 ;;
    libcuda.so* | libcudart.so* | libcublas.so* | libcublasLt.so* | libnv*.so*) return 0 ;;
  esac
  return 1
}
for t in "${targets[@]}"; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [ "$path" != "not" ] || die "$t needs $name, which ldd does not find on this machine"
    is_provided "$name" && continue
    if [ ! -f "$bundle/lib/$name" ]; then
      cp -L "$path" "$bundle/lib/$name"
      chmod u+w "$bundle/lib/$name"
      strip --strip-unneeded "$bundle/lib/$name"
    fi
  done < <(ldd "$bundle/bin/$t")
  gzip -6 -n "$bundle/bin/$t"
done

# Over the limit, the largest gzipped binary is cut in two: as much as fits stays (with 4 MiB to
# spare for the scripts and BUILD-INFO), the rest goes to the second folder.
limit_bytes=$(( max_mib * 1048576 ))
spare=$(( 4 * 1048576 ))
total=$(du -sb "$bundle" | cut -f1)
if (( total + spare > limit_bytes )); then
  gz=$(ls -S "$bundle"/bin/*.gz | head -n 1)
  size=$(stat -c %s "$gz")
  keep=$(( limit_bytes - spare - (total - size) ))
  (( keep > 0 && size - keep + spare <= limit_bytes )) ||
    die "$(basename "$gz") ($(( size / 1048576 )) MiB gzipped) does not fit two folders of $max_mib MiB"
  mkdir -p "$bundle2/bin"
  head -c "$keep" "$gz" >"$gz.1"
  tail -c +"$(( keep + 1 ))" "$gz" >"$bundle2/bin/$(basename "$gz").2"
  rm "$gz"
  echo "prepare.sh: $(basename "$gz") is cut in two: bin/$(basename "$gz").1 here, bin/$(basename "$gz").2 in $bundle2 (carry both)" >&2
fi

cp bench/mlp_train_torch.py bench/train_peer.py bench/torch_timing.py "$bundle/"
cp bench/gpu/run.sh "$bundle/"
chmod +x "$bundle/run.sh"

# Fashion-MNIST for bench_mlp_train_cuda's epoch (the same places examples/mnist_mlp.hpp looks),
# when it fits under the limit; otherwise run.sh times the epoch on random data of its shapes.
data=""
for dir in "$user_data" data/mnist /usr/share/datasets/fashion-mnist; do
  [ -n "$dir" ] || continue
  found=1
  for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "$dir/$stem.gz" ] || [ -f "$dir/$stem" ] || found=0
  done
  if ((found)); then
    data=$dir
    break
  fi
done
data_note=""
if [ -n "$data" ]; then
  data_bytes=$(du -cbL "$data"/t*-idx?-ubyte* | tail -n 1 | cut -f1)
  if (( $(du -sb "$bundle" | cut -f1) + data_bytes >= max_mib * 1048576 )); then
    data_note="$data left out ($(( data_bytes / 1048576 )) MiB): the bundle would reach $max_mib MiB"
    echo "prepare.sh: $data_note; run.sh times the epoch on random data of Fashion-MNIST's shapes" >&2
    data=""
  fi
fi
if [ -n "$data" ]; then
  dest="$bundle/data/$(basename "$(cd "$data" && pwd)")"
  mkdir -p "$dest"
  for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ -f "$data/$stem.gz" ]; then cp "$data/$stem.gz" "$dest/"; else cp "$data/$stem" "$dest/"; fi
  done
elif [ -z "$data_note" ]; then
  data_note="no Fashion-MNIST found (apt-get install dataset-fashion-mnist, or set FUSEGRAD_DATA)"
  echo "prepare.sh: $data_note; run.sh times the epoch on random data of its shapes" >&2
fi

# ---- what was built ----
commit=unknown
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  commit=$(git -C "$root" rev-parse --short HEAD)
  # Read-only: no index refresh, so a concurrent git command in this tree is not disturbed.
  [ -z "$(GIT_OPTIONAL_LOCKS=0 git -C "$root" status --porcelain --untracked-files=no)" ] ||
    commit="$commit (with uncommitted changes)"
fi
echo "$commit" >"$bundle/COMMIT"
{
  echo "commit: $commit"
  echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n)"
  echo "nvcc: $(nvcc --version | tail -n 1)"
  echo "build tree: $build (CMAKE_BUILD_TYPE=Release)"
  echo "CUDA flags: $(sed -n 's/^CUDA_FLAGS = *//p' "$build/bench/CMakeFiles/bench_mlp_train_cuda.dir/flags.make" 2>/dev/null)"
  echo "targets: ${targets[*]}"
  echo "data: ${data:-none${data_note:+: $data_note}}"
} >"$bundle/BUILD-INFO"

# ---- size ----
mib_of() {  # bytes -> MiB with one decimal
  local tenths=$(( ($1 * 10 + 524288) / 1048576 ))
  echo "$((tenths / 10)).$((tenths % 10))"
}
over=0
for folder in "$bundle" "$bundle2"; do
  [ -d "$folder" ] || continue
  bytes=$(du -sb "$folder" | cut -f1)
  echo "== bundle $folder:"
  (cd "$folder" && find . -type f -printf '%s\t%p\n' | sort -k2 |
    while IFS=$'\t' read -r size path; do printf '  %6s MiB  %s\n' "$(mib_of "$size")" "${path#./}"; done)
  echo "== bundle size: $(mib_of "$bytes") MiB ($bytes bytes; limit $max_mib MiB per folder)"
  (( bytes < max_mib * 1048576 )) || over=1
done
((over == 0)) || die "a bundle folder is over $max_mib MiB"
carried="$(basename "$bundle")"
[ ! -d "$bundle2" ] || carried="$carried, then $(basename "$bundle2") beside it (two device calls)"
echo "On a GPU machine, with $carried: bash $bundle/run.sh OUT_DIR   (or with \$OUT set)"
