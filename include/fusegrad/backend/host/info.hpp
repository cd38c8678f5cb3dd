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

#if defined(FG_HAVE_DNNL)
/// oneDNN's name for the instruction set its kernels use ("avx512_core", "avx2"), and whether
/// that is far below what this CPU runs (AVX2 kernels on an AVX-512 CPU run at half speed, SSE4.1
/// ones on an AVX2 CPU at a quarter).
inline std::string onednn_isa(bool& below_cpu) {
  // dnnl_cpu_isa_t's values are nested bit masks, stable across oneDNN 2 and 3.
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  static constexpr struct { unsigned value; const char* name; } names[] = {
      {0x1, "sse41"}, {0x3, "avx"}, {0x7, "avx2"}, {0x407, "avx2_vnni"}, {0x27, "avx512_core"},
      {0x67, "avx512_core_vnni"}, {0xe7, "avx512_core_bf16"}, {0x3e7, "avx512_core_amx"}};
  std::string name = "isa 0x" + [isa] { char hex[16]; std::snprintf(hex, sizeof hex, "%x", isa); return std::string(hex); }();
  for (const auto& n : names) {
    if (n.value == isa) {
      name = n.name;
    }
  }
  below_cpu = false;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512_kernels = (isa & 0x27u) == 0x27u, avx2_kernels = (isa & 0x7u) == 0x7u;
  below_cpu = (avx512 && !avx512_kernels) || (avx2 && !avx2_kernels);
#endif
  return name;
}
#endif

#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
/// "OpenBLAS 0.3.21" (OPENBLAS_VERSION, without its padding).
inline std::string openblas_version() {
  std::string version = OPENBLAS_VERSION;
  version.erase(0, version.find_first_not_of(' '));
  version.erase(version.find_last_not_of(' ') + 1);
  return version;
}
#endif

}  // namespace detail

/// The host backend: CPU model, threads, GEMM provider; a warning when the float GEMM's kernels
/// are far below what the CPU can run (checked here, at run time, not taken on trust).
inline BackendInfo info() {
  BackendInfo i;
  i.device = detail::cpu_model();
  i.threads = num_threads();
  const std::string on_pool = "one call per block of C on fusegrad's threads";
#if defined(FG_HAVE_DNNL)
  const dnnl_version_t* v = dnnl_version();
  bool below = false;
  i.gemm_kernel = detail::onednn_isa(below);
  i.gemm = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
           " (float: " + i.gemm_kernel + " JIT kernels";
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
  i.gemm += "; double: " + detail::openblas_version() + ", " + openblas_get_corename() + " kernels";
#elif defined(FG_HAVE_CBLAS)
  i.gemm += "; double: CBLAS";
#else
  i.gemm += "; double: fusegrad's blocked kernel";
#endif
  i.gemm += "; " + (detail::gemm_on_pool<float> ? on_pool : std::string("float products on oneDNN's own threads")) + ")";
  if (below) {
    i.warning = "oneDNN runs its " + i.gemm_kernel +
                " kernels on a CPU with wider vector units: float matrix products may run several times slower "
                "than this CPU allows (is ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA set?)";
  }
#elif defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
  i.gemm_kernel = openblas_get_corename();
  i.gemm = detail::openblas_version() + " (" + i.gemm_kernel + " kernels, " + on_pool + ")";
  if (detail::blas_core_below_cpu(i.gemm_kernel)) {
    i.warning = "OpenBLAS runs its " + i.gemm_kernel +
                " kernels on a CPU with AVX2 and FMA: matrix products may run several times slower than "
                "this CPU allows (OpenBLAS does not recognise it); build fusegrad with oneDNN (Debian: "
                "libdnnl-dev), which chooses its kernels from the CPU's instruction sets";
  }
#elif defined(FG_HAVE_CBLAS)
  i.gemm = "CBLAS (threads managed by the BLAS)";
  i.gemm_kernel = "unknown";
#else
  i.gemm = "fusegrad's blocked kernel (no BLAS found at build time)";
  i.gemm_kernel = "blocked";
  i.warning = "no BLAS: matrix products use a simple blocked kernel, far slower than a tuned BLAS; "
              "build fusegrad with oneDNN (Debian: libdnnl-dev) or OpenBLAS";
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
