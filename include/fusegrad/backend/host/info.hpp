// fusegrad/backend/host/info.hpp — what the host backend runs on: the CPU, the thread count and
// the GEMM provider with the kernels it chose, checked against what the CPU can do.
#pragma once

#include <cstdio>
#include <cstring>
#include <string>

#include "fusegrad/backend/host/gemm.hpp"
#include "fusegrad/backend/host/thread_pool.hpp"
#include "fusegrad/backend/info.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {

/// The CPU's model name from /proc/cpuinfo ("AMD EPYC 9R14"), or "CPU" where there is none.
inline std::string cpu_model() {
  std::string model = "CPU";
  if (std::FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
      if (std::strncmp(line, "model name", 10) == 0) {
        if (const char* colon = std::strchr(line, ':')) {
          model = colon + 1;
          model.erase(0, model.find_first_not_of(" \t"));
          model.erase(model.find_last_not_of(" \t\r\n") + 1);
        }
        break;
      }
    }
    std::fclose(f);
  }
  return model;
}

/// Whether a BLAS kernel family `core` (OpenBLAS's name for it) is far slower than this CPU
/// allows: pre-AVX2 kernels on a CPU with AVX2 and FMA.
inline bool blas_core_below_cpu(const std::string& core) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    return false;
  }
  static const char* const old_cores[] = {"Prescott", "Core2",   "Penryn",       "Dunnington", "Nehalem",
                                          "Atom",     "Katmai",  "Coppermine",   "Northwood",  "Banias",
                                          "Athlon",   "Opteron", "Opteron_SSE3", "Barcelona",  "Bobcat",
                                          "Sandybridge", "Bulldozer", "Piledriver", "Steamroller",
                                          "Excavator"};
  for (const char* old : old_cores) {
    if (core == old) {
      return true;
    }
  }
#else
  (void)core;
#endif
  return false;
}

}  // namespace detail

/// The host backend: CPU model, threads, GEMM provider; a warning when the GEMM's kernels are
/// far below what the CPU can run.
inline BackendInfo info() {
  BackendInfo i;
  i.device = detail::cpu_model();
  i.threads = num_threads();
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
  std::string version = OPENBLAS_VERSION;
  version.erase(0, version.find_first_not_of(' '));
  version.erase(version.find_last_not_of(' ') + 1);
  i.gemm_kernel = openblas_get_corename();
  i.gemm = version + " (" + i.gemm_kernel + " kernels, one call per block of C on fusegrad's threads)";
  if (detail::blas_core_below_cpu(i.gemm_kernel)) {
    i.warning = "OpenBLAS runs its " + i.gemm_kernel +
                " kernels on a CPU with AVX2 and FMA: matrix products may run several times slower than "
                "this CPU allows (OpenBLAS does not recognise it); a newer OpenBLAS knows more CPUs";
  }
#elif defined(FG_HAVE_CBLAS)
  i.gemm = "CBLAS (threads managed by the BLAS)";
  i.gemm_kernel = "unknown";
#else
  i.gemm = "fusegrad's blocked kernel (no BLAS found at build time)";
  i.gemm_kernel = "blocked";
  i.warning = "no BLAS: matrix products use a simple blocked kernel, far slower than a tuned BLAS";
#endif
  return i;
}

/// What "device" means here, for logs: "AMD EPYC 9R14 (host backend, 2 threads, GEMM: OpenBLAS
/// 0.3.21, Zen kernels)".
inline std::string describe() {
  const BackendInfo i = info();
  std::string gemm = i.gemm.substr(0, i.gemm.find(" ("));
  if (i.gemm_kernel != "unknown" && i.gemm_kernel != "blocked") {
    gemm += ", " + i.gemm_kernel + " kernels";
  }
  return i.device + " (host backend, " + std::to_string(i.threads) + (i.threads == 1 ? " thread" : " threads") +
         ", GEMM: " + gemm + ")";
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
