// bench/common.hpp — what bench/elementwise.cpp and bench/reduce.cpp share: command line, timing
// (std::chrono on the host backend, cudaEvents on fg::cuda_stream() on CUDA), the copy ceiling,
// and the Markdown table they print.
//
// Timing protocol, per n: every variant runs one untimed warm-up call and one calibration call
// that picks `inner`, the number of back-to-back calls in one sample (so a sample lasts >= 2 ms and
// neither the clock's resolution nor launch jitter dominates small n). Then `passes` (5) rounds
// over the variants, each taking one block of samples per variant (after another untimed call),
// until every variant has >= `reps` samples and >= `budget_s` seconds of them. The reported time
// per call is the median sample divided by `inner`.
#pragma once

#include <fusegrad/fusegrad.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <span>
#include <ctime>
#include <stdexcept>
#include <map>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fg = fusegrad;

namespace bench {

#if defined(__CUDACC__)
inline constexpr bool on_cuda = true;
inline constexpr int default_max_log2 = 28;
#else
inline constexpr bool on_cuda = false;
inline constexpr int default_max_log2 = 26;
#endif

struct Options {
  int min_log2 = 20;
  int max_log2 = default_max_log2;
  int step = 1;             // log2 step between sizes
  int reps = 5;             // at least this many timed samples ...
  double budget_s = 0.2;    // ... and at least this much time in samples, per variant and n
  int passes = 5;           // rounds over all variants (see measure_all)
  double min_sample_s = 2e-3;
  bool eigen = true;        // host only, when built with Eigen
  bool check = true;        // compare every variant's result with the fused one
};

inline void usage(const char* prog) {
  std::printf(
      "usage: %s [--quick] [--min-log2 N] [--max-log2 N] [--step K] [--reps N] [--budget S]\n"
      "          [--passes P] [--no-eigen] [--no-check]\n"
      "  sizes n = 2^min-log2 .. 2^max-log2 floats (default 2^20 .. 2^%d on this backend)\n"
      "  --quick     2^20 .. 2^24 in steps of 2, 3 reps, 0.05 s per variant: a smoke run\n"
      "  --reps N    at least N timed samples per variant and n (default 5)\n"
      "  --budget S  at least S seconds of samples per variant and n (default 0.2)\n"
      "  --passes P  rounds over the variants the samples are spread over (default 5)\n"
      "  --no-eigen  skip the Eigen::Tensor comparison (host builds with Eigen only)\n"
      "  --no-check  skip the result checks against the fused variant\n"
      "threads: OMP_NUM_THREADS (the Eigen comparison uses the same count)\n",
      prog, default_max_log2);
}

inline Options parse(int argc, char** argv) {
  Options o;
  bool max_given = false;
  auto value = [&](int& i) -> const char* {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s: %s needs a value\n", argv[0], argv[i]);
      std::exit(2);
    }
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      o.min_log2 = 20;
      if (!max_given) o.max_log2 = 24;
      o.step = 2;
      o.reps = 3;
      o.budget_s = 0.05;
      o.passes = 1;
    } else if (a == "--max-log2") {
      o.max_log2 = std::atoi(value(i));
      max_given = true;
    } else if (a == "--min-log2") {
      o.min_log2 = std::atoi(value(i));
    } else if (a == "--step") {
      o.step = std::max(1, std::atoi(value(i)));
    } else if (a == "--reps") {
      o.reps = std::max(1, std::atoi(value(i)));
    } else if (a == "--passes") {
      o.passes = std::max(1, std::atoi(value(i)));
    } else if (a == "--budget") {
      o.budget_s = std::atof(value(i));
    } else if (a == "--no-eigen") {
      o.eigen = false;
    } else if (a == "--no-check") {
      o.check = false;
    } else if (a == "-h" || a == "--help") {
      usage(argv[0]);
      std::exit(0);
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], a.c_str());
      usage(argv[0]);
      std::exit(2);
    }
  }
  if (o.min_log2 < 10 || o.max_log2 > 31 || o.min_log2 > o.max_log2) {
    std::fprintf(stderr, "%s: need 10 <= min-log2 <= max-log2 <= 31\n", argv[0]);
    std::exit(2);
  }
  return o;
}

inline int threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// ---- clock ----

#if defined(__CUDACC__)
/// Times work issued on fg::cuda_stream() with a pair of events around it.
class Timer {
 public:
  Timer() {
    FG_CUDA_CHECK(cudaEventCreate(&start_));
    FG_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Timer() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void start() { FG_CUDA_CHECK(cudaEventRecord(start_, fg::cuda_stream())); }
  /// Seconds since start(), once the stream has reached this point.
  double stop() {
    FG_CUDA_CHECK(cudaEventRecord(stop_, fg::cuda_stream()));
    FG_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0.f;
    FG_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms * 1e-3;
  }

 private:
  cudaEvent_t start_{}, stop_{};
};
#else
/// Wall clock; the host backend runs synchronously, synchronize() is there for symmetry.
class Timer {
 public:
  void start() {
    fg::backend::synchronize();
    t0_ = std::chrono::steady_clock::now();
  }
  double stop() {
    fg::backend::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};
#endif

/// Median seconds per call of each of `fs` (see the protocol at the top of this file). The
/// variants are measured in `passes` rounds, one block of samples per variant per round, so that a
/// slow spell of a shared machine is spread over all of them; each block starts with an untimed
/// call, which absorbs the hand-over between thread pools (OpenMP's and Eigen's spin a while
/// after their last parallel region).
inline std::vector<double> measure_all(const Options& o, const std::vector<std::function<void()>>& fs) {
  Timer timer;
  const std::size_t nv = fs.size();
  std::vector<int> inner(nv, 1);
  std::vector<std::vector<double>> samples(nv);
  const int per_pass_reps = (o.reps + o.passes - 1) / o.passes;
  const double per_pass_budget = o.budget_s / o.passes;
  for (int pass = 0; pass < o.passes; ++pass) {
    for (std::size_t v = 0; v < nv; ++v) {
      const auto& f = fs[v];
      f();  // warm-up: first touch, caches, thread pools, the CUDA memory pool
      if (pass == 0) {
        timer.start();
        f();
        const double once = std::max(timer.stop(), 1e-9);
        inner[v] = static_cast<int>(std::clamp(std::ceil(o.min_sample_s / once), 1.0, 10000.0));
      }
      double spent = 0.0;
      int taken = 0;
      while (taken < per_pass_reps || spent < per_pass_budget) {
        timer.start();
        for (int i = 0; i < inner[v]; ++i) {
          f();
        }
        const double t = timer.stop();
        samples[v].push_back(t / inner[v]);
        spent += t;
        if (++taken >= 1000) {
          break;
        }
      }
    }
  }
  std::vector<double> medians(nv);
  for (std::size_t v = 0; v < nv; ++v) {
    auto& x = samples[v];
    std::nth_element(x.begin(), x.begin() + x.size() / 2, x.end());
    medians[v] = x[x.size() / 2];
  }
  return medians;
}

// ---- the copy ceiling: two plain copies of the same bytes; the faster one is the ceiling ----

/// One stretch of a copy: n floats from src to dst. A copy of "the bytes a kernel moves" is made
/// of stretches of the benchmark's own arrays (no extra memory: 2^28 floats is 1 GiB an array).
struct Piece {
  float* dst;
  const float* src;
  fg::index_t n;
};

#if defined(__CUDACC__)
__global__ void copy_loop_kernel(fg::index_t n, const float* __restrict__ src, float* __restrict__ dst) {
  const fg::index_t i = static_cast<fg::index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    dst[i] = src[i];
  }
}
#endif

/// The system's copy: cudaMemcpyAsync device-to-device on fg::cuda_stream(), or on the host one
/// std::memcpy per OpenMP thread and piece over contiguous slices (the same threads and static
/// split as the fused loop), in one parallel region. glibc's memcpy switches to non-temporal
/// stores for large copies.
inline void copy_memcpy(std::span<const Piece> pieces) {
#if defined(__CUDACC__)
  for (const Piece& p : pieces) {
    FG_CUDA_CHECK(cudaMemcpyAsync(p.dst, p.src, static_cast<std::size_t>(p.n) * sizeof(float),
                                  cudaMemcpyDeviceToDevice, fg::cuda_stream()));
  }
#else
#pragma omp parallel
  {
#if defined(_OPENMP)
    const fg::index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    const fg::index_t nt = 1, t = 0;
#endif
    for (const Piece& p : pieces) {
      const fg::index_t per = (p.n + nt - 1) / nt;
      const fg::index_t begin = std::min(p.n, t * per);
      const fg::index_t end = std::min(p.n, begin + per);
      if (end > begin) {
        std::memcpy(p.dst + begin, p.src + begin, static_cast<std::size_t>(end - begin) * sizeof(float));
      }
    }
  }
#endif
}

/// The same copy as a plain loop with ordinary stores, the way the fused kernels store: on the
/// host `omp for simd` loops in one parallel region, on CUDA one kernel per piece, one thread per
/// element.
inline void copy_loop(std::span<const Piece> pieces) {
#if defined(__CUDACC__)
  for (const Piece& p : pieces) {
    copy_loop_kernel<<<static_cast<unsigned>((p.n + 255) / 256), 256, 0, fg::cuda_stream()>>>(p.n, p.src, p.dst);
    FG_CUDA_CHECK(cudaGetLastError());
  }
#else
#pragma omp parallel
  for (const Piece& p : pieces) {
    float* __restrict dst = p.dst;
    const float* __restrict src = p.src;
#pragma omp for simd schedule(static) nowait
    for (fg::index_t i = 0; i < p.n; ++i) {
      dst[i] = src[i];
    }
  }
#endif
}

// ---- peers run as programs (PyTorch scripts) ----

/// `s` as one word for /bin/sh: single-quoted, each ' written as '\''.
inline std::string shell_quoted(const std::string& s) {
  std::string q = "'";
  for (const char c : s) {
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return q + "'";
}

/// A peer script's path: $FG_BENCH_TORCH_DIR/<name> when that is set (a copy of the binaries away
/// from their source tree: bench/gpu/run.sh), else the copy in the tree the benchmark was built from.
inline std::string peer_script(const std::string& name) {
  if (const char* env = std::getenv("FG_BENCH_TORCH_DIR"); env != nullptr && *env != '\0') {
    return std::string(env) + "/" + name;
  }
#if defined(FG_BENCH_SOURCE_DIR)
  return std::string(FG_BENCH_SOURCE_DIR) + "/" + name;
#else
  return name;
#endif
}

/// Runs `python3 script args` and hands each line starting with "RESULT " to on_result; lines
/// starting with INFO or ERROR, or naming an Error, are collected in `info`. Returns the number of
/// RESULT lines; `info` says why when there were none.
template <class OnResult>
int run_peer(const std::string& script, const std::string& args, std::string& info, const OnResult& on_result) {
  const std::string cmd = "python3 " + shell_quoted(script) + " " + args + " 2>&1";
  std::FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    info = "could not start python3";
    return 0;
  }
  int results = 0;
  char line[1024];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    const std::string s(line);
    if (s.rfind("RESULT ", 0) == 0) {
      results += on_result(s) ? 1 : 0;
    } else if (s.rfind("INFO ", 0) == 0 || s.rfind("ERROR ", 0) == 0 || s.find("Error") != std::string::npos) {
      info += s.substr(0, s.find('\n')) + "; ";
    }
  }
  const int rc = pclose(pipe);
  if (results == 0 && info.empty()) {
    info = "the peer did not run (exit status " + std::to_string(rc) + ")";
  }
  return results;
}

/// One batch size's figures from a training-step peer script (bench/*_train_torch.py).
struct TrainPeerRow {
  double eager_ms = -1, compiled_ms = -1;
  long eager_kernels = -1, compiled_kernels = -1;
};

/// Runs a training-step peer script (`--batches B1,B2 --budget S --device ...` plus `extra`) and
/// parses its RESULT lines; empty when PyTorch cannot run (`info` says why).
inline std::map<long, TrainPeerRow> run_train_peer(const std::string& script, const std::string& batches, double budget,
                                                   std::string& info, const std::string& extra = "") {
  std::map<long, TrainPeerRow> rows;
  const std::string args = "--batches " + batches + " --budget " + std::to_string(budget) +
                           (on_cuda ? " --device cuda" : " --device cpu --threads " + std::to_string(threads())) + extra;
  run_peer(peer_script(script), args, info, [&](const std::string& s) {
    long b = 0, ek = -1, ck = -1;
    double em = -1, cm = -1;
    if (std::sscanf(s.c_str(), "RESULT batch=%ld eager_ms=%lf compiled_ms=%lf eager_kernels=%ld compiled_kernels=%ld", &b,
                    &em, &cm, &ek, &ck) != 5) {
      return false;
    }
    rows[b] = {em, cm, ek, ck};
    return true;
  });
  return rows;
}

// ---- reporting ----

inline std::string now_string() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", std::localtime(&now));
  return buf;
}

/// CPU time the rest of the machine used while the benchmark ran (from /proc/stat, minus this
/// process's own getrusage time), and the hypervisor's steal time: figures taken on a busy or
/// oversubscribed machine say so in their footer.
class CpuMonitor {
 public:
  CpuMonitor() : busy0_(stat(false)), steal0_(stat(true)), self0_(self()), wall0_(std::chrono::steady_clock::now()) {}
  void print() const {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0_).count();
    const double other = (stat(false) - busy0_) - (self() - self0_);
    const double steal = stat(true) - steal0_;
    std::printf("\nMachine load during the run (%.0f s wall): other processes used %.1f CPU-seconds (%.0f%% of one "
                "core), hypervisor steal %.1f CPU-seconds.%s\n",
                wall, std::max(0.0, other), 100 * std::max(0.0, other) / wall, steal,
                other > 0.05 * wall || steal > 0.05 * wall ? " **The machine was not idle: treat these figures with care.**" : "");
  }

 private:
  /// Busy (user + nice + system + irq + softirq) or steal seconds of all CPUs since boot.
  static double stat(bool steal) {
    double v[8] = {};
    if (std::FILE* f = std::fopen("/proc/stat", "r")) {
      if (std::fscanf(f, "cpu %lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                      &v[7]) != 8) {
        std::fill(v, v + 8, 0.0);
      }
      std::fclose(f);
    }
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    return (steal ? v[7] : v[0] + v[1] + v[2] + v[5] + v[6]) / tick;
  }
  /// CPU seconds of this process and its finished children (a peer benchmark it ran is ours).
  static double self() {
    double total = 0;
    for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
      rusage r{};
      getrusage(who, &r);
      total += r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
    }
    return total;
  }
  double busy0_, steal0_, self0_;
  std::chrono::steady_clock::time_point wall0_;
};

/// Prints the lines every benchmark starts with: backend, device, threads, protocol.
inline void print_header(const char* what, const Options& o) {
  std::printf("## %s\n\n", what);
  std::printf("- backend: %s\n", on_cuda ? "CUDA (nvcc)" : "host (g++ + OpenMP)");
#if defined(__CUDACC__)
  int dev = 0;
  cudaDeviceProp prop{};
  FG_CUDA_CHECK(cudaGetDevice(&dev));
  FG_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  std::printf("- device: %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount,
              prop.totalGlobalMem / 1073741824.0);
#else
  const char* env = std::getenv("OMP_NUM_THREADS");
  std::printf("- threads: %d (OMP_NUM_THREADS=%s)\n", threads(), env ? env : "unset");
#endif
  std::printf("- sizes: 2^%d .. 2^%d floats, step 2^%d; timing: median of >= %d samples and >= %.2f s "
              "per variant and n, in %d passes over the variants, each block after an untimed call\n",
              o.min_log2, o.max_log2, o.step, o.reps, o.budget_s, o.passes);
  std::string load = "?";
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[64] = {};
    if (std::fgets(buf, sizeof buf, f)) {
      load = buf;
      load = load.substr(0, load.find(' ', load.find(' ', load.find(' ') + 1) + 1));
    }
    std::fclose(f);
  }
  std::printf("- run at: %s (load average before: %s)\n\n", now_string().c_str(), load.c_str());
  std::fflush(stdout);
}

inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// "1.234" milliseconds, or "-" for a variant that did not run (negative time).
inline std::string ms(double s) { return s < 0 ? "-" : fmt("%.3f", s * 1e3); }
inline std::string gbs(double bytes, double s) { return s <= 0 ? "-" : fmt("%.1f", bytes / s * 1e-9); }
inline std::string ratio(double num, double den) { return (num <= 0 || den <= 0) ? "-" : fmt("%.2f", num / den); }

inline void print_row(const std::vector<std::string>& cells) {
  std::string line = "|";
  for (const auto& c : cells) {
    line += " " + c + " |";
  }
  std::printf("%s\n", line.c_str());
}

inline void print_table_head(const std::vector<std::string>& names) {
  print_row(names);
  print_row(std::vector<std::string>(names.size(), "---:"));
}

enum Variant { fused, unfused, memcpy_copy, loop_copy, hand, eigen, variants };
inline const char* const variant_names[variants] = {"fused", "unfused", "memcpy", "copy loop", "hand", "eigen"};

/// One size's median seconds per call for every variant (negative: not run).
struct Row {
  int log2n = 0;
  double t[variants] = {-1, -1, -1, -1, -1, -1};
  double copy() const {  // the ceiling: the faster plain copy
    if (t[memcpy_copy] < 0) return t[loop_copy];
    if (t[loop_copy] < 0) return t[memcpy_copy];
    return std::min(t[memcpy_copy], t[loop_copy]);
  }
};

/// Progress on stderr while the tables wait for every size.
inline void progress(const Row& r) {
  std::fprintf(stderr, "  n = 2^%d:", r.log2n);
  for (int v = 0; v < variants; ++v) {
    if (r.t[v] >= 0) std::fprintf(stderr, " %s %.3f ms", variant_names[v], r.t[v] * 1e3);
  }
  std::fprintf(stderr, "\n");
}

/// Times the variants of one size (measure_all) and shows the row on stderr.
inline Row measure_row(const Options& o, int log2n, const std::vector<std::function<void()>>& fs) {
  Row row;
  row.log2n = log2n;
  const std::vector<double> t = measure_all(o, fs);
  std::copy(t.begin(), t.end(), row.t);
  progress(row);
  return row;
}

/// The two tables: times, then GB/s and ratios. `bytes_per_n[v]` is variant v's counted traffic
/// divided by n.
inline void report(const std::vector<Row>& rows, const double (&bytes_per_n)[variants], bool with_eigen) {
  std::vector<std::string> head = {"n", "MiB/array"};
  for (int v = 0; v < variants; ++v) {
    if (v != eigen || with_eigen) head.push_back(std::string(variant_names[v]) + " ms");
  }
  std::printf("Median time per call:\n\n");
  print_table_head(head);
  for (const auto& r : rows) {
    const double n = std::ldexp(1.0, r.log2n);
    std::vector<std::string> cells = {"2^" + std::to_string(r.log2n), fmt(n >= 262144 ? "%.0f" : "%.3g", n * 4 / 1048576.0)};
    for (int v = 0; v < variants; ++v) {
      if (v != eigen || with_eigen) cells.push_back(ms(r.t[v]));
    }
    print_row(cells);
  }
  head = {"n"};
  for (int v = 0; v < variants; ++v) {
    if (v != eigen || with_eigen) head.push_back(std::string(variant_names[v]) + " GB/s");
  }
  head.insert(head.end(), {"speedup (unfused/fused time)", "fused/copy GB/s", "fused/hand GB/s"});
  if (with_eigen) head.push_back("fused vs Eigen (Eigen time/fused time)");
  std::printf("\nBandwidth (counted bytes / median time) and ratios; copy = the faster of memcpy and copy loop:\n\n");
  print_table_head(head);
  for (const auto& r : rows) {
    const double n = std::ldexp(1.0, r.log2n);
    std::vector<std::string> cells = {"2^" + std::to_string(r.log2n)};
    for (int v = 0; v < variants; ++v) {
      if (v != eigen || with_eigen) cells.push_back(gbs(bytes_per_n[v] * n, r.t[v]));
    }
    cells.push_back(ratio(r.t[unfused], r.t[fused]));
    cells.push_back(ratio(r.copy(), r.t[fused]));
    cells.push_back(ratio(r.t[hand], r.t[fused]));
    if (with_eigen) cells.push_back(ratio(r.t[eigen], r.t[fused]));
    print_row(cells);
  }
  std::fflush(stdout);
}

/// Result check: |got - want| <= tol * scale, else a loud line (and a failing exit status later).
inline bool g_failed = false;
inline void check(const char* what, double n_log2, double err, double tol) {
  if (!(err <= tol)) {
    std::printf("\n**CHECK FAILED**: %s at n = 2^%g: error %g > tolerance %g\n\n", what, n_log2, err, tol);
    g_failed = true;
  }
}

/// The end of a bandwidth benchmark's run(): the Eigen target at the largest n (when Eigen ran),
/// the machine-load footer, and the exit status (1 when a result check failed).
inline int finish(const Row& last, bool with_eigen, const CpuMonitor& monitor) {
  if (with_eigen) {
    const double vs = last.t[eigen] / last.t[fused];
    std::printf("- Eigen time / fused time %.2f (target >= 0.90: within 10%% of Eigen or faster): %s\n", vs,
                vs >= 0.9 ? "met" : "NOT met");
  }
  monitor.print();
  if (g_failed) {
    std::printf("\nSome result checks FAILED (see above).\n");
    return 1;
  }
  return 0;
}

/// main() of a bandwidth benchmark: parse the options, run, and turn an exception into a message
/// and exit status 1.
/// run() as a program's main: an exception (no device, no data, a failed launch) is reported with
/// the program's name and exits 1.
template <class Run>
int guarded_main(const char* program, const Run& run) {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

inline int main_of(int argc, char** argv, int (*run)(const Options&)) {
  const Options o = parse(argc, argv);
  return guarded_main(argv[0], [&] { return run(o); });
}

}  // namespace bench
