#!/usr/bin/env bash
# run.sh — runs a GPU bundle made by bench/gpu/prepare.sh on a machine with an NVIDIA GPU: the CUDA
# tests, compute-sanitizer over the reduction, optimizer, loader and training tests, and the four
# benchmarks; then writes RESULTS-section.md, a section ready to paste into bench/RESULTS.md.
#
#   bash gpu-bundle/run.sh [OUT]        OUT: $1, else $OUT, else ./gpu-results
#
# Every step runs under `timeout` with its own budget; the budgets add up to under 8 minutes, and a
# global deadline (FG_RUN_DEADLINE_S, default 470 s after the start) shortens the last steps if the
# first ones ran long. A failing step is recorded and the run goes on; the exit status is 1 if any
# step did not pass. Needs bash, coreutils, python3 (unpacks the gzipped binaries, writes the
# section), the CUDA driver, runtime and cuBLAS; PyTorch and compute-sanitizer when present.
# Binaries run from a temporary folder; logs go to OUT, nothing else is written there.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-${OUT:-$PWD/gpu-results}}
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
records="$out/.steps"
rm -rf "$records"
mkdir -p "$records"

# Scratch space outside OUT (nothing in it comes back): the unpacked binaries, random data.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

t0=$(date +%s)
deadline=$(( t0 + ${FG_RUN_DEADLINE_S:-470} ))
grace=5  # seconds between timeout's TERM and KILL
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
seconds_of() { printf '%d.%d' $(( $1 / 1000 )) $(( $1 % 1000 / 100 )); }

# step ORDER NAME BUDGET_S COMMAND...: runs COMMAND under timeout, stdout to OUT/NAME.log and
# stderr to OUT/NAME.stderr.log, and records "name, result, seconds, command" in OUT/.steps/ORDER.
step() {
  local order=$1 name=$2 budget=$3
  shift 3
  local left=$(( deadline - $(date +%s) - grace ))
  local limit=$(( budget < left ? budget : left ))
  local shown="$*"
  shown=${shown//"$bin"\//bin/}
  shown=${shown//"$scratch"\//}
  shown=${shown//"$here"\//}
  [ -z "$sanitizer" ] || shown=${shown//"$sanitizer"/compute-sanitizer}
  if (( limit < 5 )); then
    printf '%s\tskipped (no time left)\t0\t%s\n' "$name" "$shown" >"$records/$order"
    echo "== $name: skipped, no time left"
    return
  fi
  echo "== $name (limit ${limit} s): $shown"
  local start rc result
  start=$(now_ms)
  timeout -k "$grace" "$limit" "$@" >"$out/$name.log" 2>"$out/$name.stderr.log"
  rc=$?
  local ms=$(( $(now_ms) - start ))
  # Catch2 exits with the number of failed assertions, so 77 and 124 need a second look.
  result="FAIL (exit $rc)"
  if ((rc == 0)); then
    result=pass
  elif (( (rc == 124 || rc == 137) && ms >= limit * 1000 - 500 )); then
    result="TIMEOUT after ${limit} s"
  elif ((rc == 77)) && [[ $(head -c 4096 "$out/$name.log") == *"no CUDA device"* ]]; then
    result="skipped (no CUDA device)"
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$result" "$(seconds_of "$ms")" "$shown" >"$records/$order"
  echo "== $name: $result in $(seconds_of "$ms") s"
  if [ "$result" != pass ]; then
    tail -n 15 "$out/$name.log" "$out/$name.stderr.log" 2>/dev/null | while IFS= read -r line; do echo "   | $line"; done
  fi
}

# ---- the machine ----
{
  echo "commit: $(head -n 1 "$here/COMMIT" 2>/dev/null || echo unknown)"
  echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  if command -v nvidia-smi >/dev/null 2>&1; then
    timeout 20 nvidia-smi -L
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  else
    echo "nvidia-smi: not found"
  fi
} | tee "$out/machine.log"
[ -f "$here/BUILD-INFO" ] && cat "$here/BUILD-INFO" >"$out/BUILD-INFO"
timeout 20 nvidia-smi >"$out/nvidia-smi.log" 2>&1

# ---- the binaries: prepare.sh gzips them (run from scratch, so the bundle may be read-only); one
# too large for a folder is cut in two: bin/NAME.gz.1 here, bin/NAME.gz.2 in the folder beside
# this one named like it with "-2" (gpu-bundle-2), carried by a second device call ----
bin="$scratch/bin"
mkdir -p "$bin"
python3 - "$here/bin" "$here-2/bin" "$bin" <<'PY' || { echo "could not unpack $here/bin"; exit 1; }
import gzip, io, os, shutil, sys
src, second, dst = sys.argv[1], sys.argv[2], sys.argv[3]
for name in sorted(os.listdir(src)):
    path = os.path.join(src, name)
    if name.endswith(".gz.1"):
        rest = os.path.join(second, name[:-2] + ".2")
        if not os.path.exists(rest):
            sys.exit(f"{name} is the first part of a binary; its second part {rest} is missing (carry it too)")
        with open(path, "rb") as a, open(rest, "rb") as b:
            data = io.BytesIO(a.read() + b.read())
        name, opened = name[:-5], gzip.open(data, "rb")
    elif name.endswith(".gz"):
        name, opened = name[:-3], gzip.open(path, "rb")
    else:
        opened = open(path, "rb")
    target = os.path.join(dst, name)
    with opened as f, open(target, "wb") as g:
        shutil.copyfileobj(f, g, 1 << 20)
    os.chmod(target, 0o755)
PY

# ---- shared libraries: the bundle's lib/ only if something is missing, then CUDA's and pip's ----
missing_libs() {
  local f name arrow rest
  for f in "$bin"/*; do
    while read -r name arrow rest; do
      [[ $arrow == "=>" && $rest == "not found"* ]] && echo "$name"
    done < <(ldd "$f" 2>/dev/null)
  done
}
{
  missing=$(missing_libs)
  if [ -n "$missing" ]; then
    echo "not found by the loader: ${missing//$'\n'/ }; adding $here/lib"
    export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    missing=$(missing_libs)
  fi
  if [ -n "$missing" ]; then
    dirs=(/usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64)
    while IFS= read -r sp; do
      dirs+=("$sp"/nvidia/*/lib)
    done < <(timeout 30 python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null)
    for d in "${dirs[@]}"; do
      for lib in $missing; do
        if [ -e "$d/$lib" ] && [[ ":${LD_LIBRARY_PATH:-}:" != *":$d:"* ]]; then
          echo "found $lib in $d"
          export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
        fi
      done
    done
    missing=$(missing_libs)
    [ -z "$missing" ] || echo "still not found: ${missing//$'\n'/ }"
  fi
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
} >"$out/libraries.log" 2>&1
# The block above ran in this shell (a { } group, not a subshell), so the export holds from here on.
cat "$out/libraries.log"

sanitizer=""
for c in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/bin/compute-sanitizer \
         /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer; do
  if [ -n "$c" ] && [ -x "$c" ]; then
    sanitizer=$c
    break
  fi
done

data=""
for d in "$here"/data/*/; do
  [ -d "$d" ] && data=${d%/}
done
if [ -z "$data" ]; then
  # A bundle without Fashion-MNIST (prepare.sh leaves it out above its size limit): random images
  # and labels of the same shapes, raw IDX, outside OUT. The epoch costs the same on them.
  data="$scratch/random-mnist-shapes"
  mkdir -p "$data"
  timeout 60 python3 - "$data" <<'PY' || data=""
import os, struct, sys
for prefix, n in (("train", 60000), ("t10k", 10000)):
    with open(os.path.join(sys.argv[1], prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + os.urandom(n * 784))
    with open(os.path.join(sys.argv[1], prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(b % 10 for b in os.urandom(n)))
PY
  echo "data: ${data:-none} (the bundle has no Fashion-MNIST)"
fi
export FG_BENCH_TORCH_DIR="$here"

# ---- the steps (budgets in seconds; they add up to 455) ----
tests="$bin/fusegrad_tests_cuda"
step 01 tests 60 "$tests" --durations yes

# compute-sanitizer over the reduction, optimizer, loader and training tests (Catch2 tags), 120 s
# in all: the eight (tool, group) runs side by side, each its own process on the one GPU; one
# process at a time (one run per tool over all four groups) if the GPU is in exclusive mode.
groups=("reduce:[reduce]~[autodiff]" "optim:[optim]" "data:[data]" "train:[train]")
compute_mode=$(timeout 20 nvidia-smi --query-gpu=compute_mode --format=csv,noheader 2>/dev/null | head -n 1)
sanitize=("$sanitizer" --error-exitcode 99 --print-limit 50 --tool)
if [ -z "$sanitizer" ]; then
  echo "== compute-sanitizer: not found; memcheck and racecheck skipped"
  printf '%s\t%s\t0\t%s\n' sanitizers "skipped (no compute-sanitizer)" "compute-sanitizer" >"$records/02"
elif [[ $compute_mode == Exclusive* ]]; then
  all="[reduce]~[autodiff],[optim],[data],[train]"
  step 02 memcheck 70 "${sanitize[@]}" memcheck "$tests" "$all"
  step 03 racecheck 50 "${sanitize[@]}" racecheck "$tests" "$all"
else
  n=2
  for tool in memcheck racecheck; do
    for g in "${groups[@]}"; do
      step "$(printf '%02d' $n)" "$tool-${g%%:*}" 120 "${sanitize[@]}" "$tool" "$tests" "${g#*:}" &
      n=$((n + 1))
    done
  done
  wait
fi

step 20 bench_elementwise 40 "$bin/bench_elementwise_cuda"
step 21 bench_reduce 35 "$bin/bench_reduce_cuda"
step 22 bench_mlp_grad 30 "$bin/bench_mlp_grad_cuda"
data_args=()
[ -n "$data" ] && data_args=(--data "$data")
# Without PyTorch first, short: the fusegrad figures and the epoch even if torch.compile runs long.
step 23 bench_mlp_train 30 "$bin/bench_mlp_train_cuda" --budget 0.5 "${data_args[@]}"
step 24 bench_mlp_train_torch 140 "$bin/bench_mlp_train_cuda" --torch

total=$(( $(date +%s) - t0 ))
echo "== all steps: $total s"

# ---- RESULTS-section.md ----
section="$out/RESULTS-section.md"
if command -v python3 >/dev/null 2>&1; then
  python3 - "$out" "$total" <<'PY'
import glob, os, sys

out, total = sys.argv[1], sys.argv[2]
def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""

machine = read(os.path.join(out, "machine.log")).splitlines()
info = dict(l.split(": ", 1) for l in machine if ": " in l and not l.startswith("GPU "))
gpus = [l.split(" (UUID")[0] for l in machine if l.startswith("GPU ")]
query = [l for l in machine if l.count(",") >= 3]
device = gpus[0].split(": ", 1)[1] if gpus else "unknown GPU"
build = read(os.path.join(out, "BUILD-INFO")).strip().splitlines()
steps = [read(p).rstrip("\n").split("\t") for p in sorted(glob.glob(os.path.join(out, ".steps", "*")))]

def summary(name, result):
    """The line of a test or sanitizer log that says how it went."""
    text = read(os.path.join(out, name + ".log")) + read(os.path.join(out, name + ".stderr.log"))
    keep = [l.strip("= ").strip() for l in text.splitlines()
            if "SUMMARY" in l or l.startswith("test cases") or l.startswith("All tests passed")
            or l.startswith("assertions") or "No test cases matched" in l or "CHECK FAILED" in l]
    return "; ".join(keep[-3:])

def cell(text):
    return text.replace("|", "\\|")

lines = []
w = lines.append
w(f"## Run N — CUDA, {info.get('started', '?')[:10]}: {device}")
w("")
w(f"- device: {', '.join(gpus) or 'unknown'}" + (f" ({query[0]}: name, driver, memory, max SM clock)" if query else ""))
w(f"- commit: `{info.get('commit', 'unknown')}`")
for l in build:
    if l.startswith(("built:", "nvcc:", "CUDA flags:")):
        w(f"- {l}")
w("- command: `bash bench/gpu/prepare.sh` on the build machine, then `bash gpu-bundle/run.sh` on the GPU "
  f"machine: {total} s in all")
w(f"- run at: {info.get('started', '?')}")
w("")
w("| step | result | seconds | summary | command |")
w("| --- | --- | ---: | --- | --- |")
for s in steps:
    if len(s) < 4:
        continue
    name, result, secs, cmd = s[:4]
    shown = result if result == "pass" else f"**{result}**"
    w(f"| {name} | {shown} | {secs} | {cell(summary(name, result))} | `{cell(cmd)}` |")
w("")

def bench_body(name):
    """The benchmark's stdout, headings folded into bold lines, so they nest under this section."""
    body = []
    for l in read(os.path.join(out, name + ".log")).splitlines():
        if l.startswith("#"):
            l = "**" + l.lstrip("#").strip() + "**"
        if l.startswith("|") and body and body[-1].strip() and not body[-1].startswith("|"):
            body.append("")  # a table starts a block of its own
        body.append(l)
    while body and not body[0].strip():
        body.pop(0)
    return body

for s in steps:
    if len(s) < 4 or not s[0].startswith("bench_"):
        continue
    name, result = s[0], s[1]
    w(f"### `{name}` ({result})")
    w("")
    body = bench_body(name)
    lines.extend(body if body else ["(no output)"])
    w("")

failed = [s for s in steps if len(s) >= 4 and s[1] != "pass"]
if failed:
    w("### Steps that did not pass: the end of their logs")
    w("")
    for s in failed:
        name = s[0]
        tail = (read(os.path.join(out, name + ".log")).splitlines()[-12:]
                + read(os.path.join(out, name + ".stderr.log")).splitlines()[-12:])
        w(f"`{name}`: {s[1]}")
        w("")
        w("```")
        lines.extend(tail or ["(empty log)"])
        w("```")
        w("")

with open(os.path.join(out, "RESULTS-section.md"), "w") as f:
    f.write("\n".join(lines).rstrip("\n") + "\n")
PY
fi
if [ ! -s "$section" ]; then  # no python3, or it failed: the steps alone
  {
    echo "## Run N — CUDA, $(date -u +%Y-%m-%d): $(timeout 20 nvidia-smi -L 2>/dev/null | head -n 1)"
    echo
    echo "- commit: \`$(head -n 1 "$here/COMMIT" 2>/dev/null)\`; $total s in all; tables: the bench_*.log files"
    echo
    echo "| step | result | seconds | command |"
    echo "| --- | --- | ---: | --- |"
    for r in "$records"/*; do
      IFS=$'\t' read -r name result secs cmd <"$r"
      echo "| $name | $result | $secs | \`$cmd\` |"
    done
  } >"$section"
fi
echo "== wrote $section"

for r in "$records"/*; do
  IFS=$'\t' read -r _ result _ <"$r"
  [ "$result" = pass ] || exit 1
done
exit 0
