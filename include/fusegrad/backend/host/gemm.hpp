// fusegrad/backend/host/gemm.hpp — matrix products on the host backend: oneDNN's sgemm for float
// when the build found it (FG_HAVE_DNNL), CBLAS when it found one (FG_HAVE_CBLAS, e.g. OpenBLAS),
// otherwise a cache-blocked kernel; all on the thread pool.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "fusegrad/backend/gemm_desc.hpp"
#include "fusegrad/backend/host/launch.hpp"
#include "fusegrad/core/error.hpp"
#include "fusegrad/eval/stats.hpp"

#if defined(FG_HAVE_CBLAS)
#include <cblas.h>
#endif
#if defined(FG_HAVE_DNNL)
#include <oneapi/dnnl/dnnl.h>
#endif

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {

/// C = A · B (C += A · B when accumulating) for one batch entry, by blocks of k so a panel of B
/// stays in cache.
template <class T>
void gemm_blocked(const GemmProblem<T, T>& p, index_t batch) {
  const T* a = p.a.ptr + p.a.offset(batch, p.group());
  const T* bsrc = p.b.ptr + p.b.offset(batch, p.group());
  T* c = p.c + batch * p.m * p.ldc;
  // B as a contiguous (k, n) panel: transposed operands are packed once.
  std::vector<T> packed;
  const T* b = bsrc;
  index_t ldb = p.b.ld;
  if (p.b.trans) {
    packed.resize(static_cast<std::size_t>(p.k * p.n));
    for (index_t kk = 0; kk < p.k; ++kk) {
      for (index_t j = 0; j < p.n; ++j) {
        packed[kk * p.n + j] = bsrc[j * p.b.ld + kk];
      }
    }
    b = packed.data();
    ldb = p.n;
  }
  constexpr index_t kb = 256;
  run_split(p.m, p.m * p.n * p.k >= (1 << 16), [&](index_t first, index_t last) FG_NOINLINE {
    for (index_t i = first; i < last; ++i) {
      T* ci = c + i * p.ldc;
      if (!p.accumulate) {
        for (index_t j = 0; j < p.n; ++j) {
          ci[j] = T(0);
        }
      }
      for (index_t k0 = 0; k0 < p.k; k0 += kb) {
        const index_t k1 = std::min(p.k, k0 + kb);
        for (index_t kk = k0; kk < k1; ++kk) {
          const T aik = p.a.trans ? a[kk * p.a.ld + i] : a[i * p.a.ld + kk];
          const T* bk = b + kk * ldb;
#pragma omp simd
          for (index_t j = 0; j < p.n; ++j) {
            ci[j] += aik * bk[j];
          }
        }
      }
    }
  });
}

/// Which library multiplies matrices of T: oneDNN's JIT sgemm for float when the build found it
/// (it dispatches on the CPU's instruction sets at run time, so it never falls back to old
/// kernels on a CPU it does not know, as OpenBLAS 0.3.21 does on recent Xeons: bench/RESULTS.md
/// Run 6), then CBLAS (OpenBLAS), then the blocked kernel above.
enum class GemmProvider { onednn, openblas, cblas, blocked };

template <class T>
inline constexpr GemmProvider gemm_provider =
#if defined(FG_HAVE_DNNL)
    std::is_same_v<T, float> ? GemmProvider::onednn :
#endif
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
                             GemmProvider::openblas;
#elif defined(FG_HAVE_CBLAS)
                             GemmProvider::cblas;
#else
                             GemmProvider::blocked;
#endif

/// Whether the provider's calls run on the calling thread when asked to (oneDNN's OpenMP build in
/// an OpenMP program, its sequential build, OpenBLAS): then the pool splits each product into blocks of C, one
/// single-threaded call per block, and one set of threads runs every kernel. A provider's own
/// threads (libgomp's, or OpenBLAS's pthreads) spin while idle and wait for each other at every
/// call, which collapses when the cores are shared (thread_pool.hpp). Another CBLAS gets one call
/// per product from the calling thread and runs its own threads.
template <class T>
inline constexpr bool gemm_on_pool = gemm_provider<T> == GemmProvider::openblas ||
#if defined(FG_HAVE_DNNL) && ((DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP && defined(_OPENMP)) || DNNL_CPU_RUNTIME == DNNL_RUNTIME_SEQ)
                                     gemm_provider<T> == GemmProvider::onednn;
#else
                                     false;
#endif

/// Makes the provider calls of this scope single-threaded. oneDNN's OpenMP build and the OpenMP
/// build of OpenBLAS follow the calling thread's OpenMP thread count at every call, so that is 1
/// for the scope and restored after (the user's own OpenMP code keeps its threads); the pthreads
/// build of OpenBLAS follows openblas_set_num_threads (set once).
class ProviderOneThread {
 public:
  ProviderOneThread() {
    static const bool once = [] {
      thread_pool();  // sized before the thread count of this thread is lowered
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
#if defined(_OPENMP)
      const int omp_threads = omp_get_max_threads();
#endif
      openblas_set_num_threads(1);
#if defined(_OPENMP)
      omp_set_num_threads(omp_threads);
#endif
#endif
      return true;
    }();
    (void)once;
#if defined(_OPENMP)
    omp_set_num_threads(1);
#endif
  }
  ProviderOneThread(const ProviderOneThread&) = delete;
  ProviderOneThread& operator=(const ProviderOneThread&) = delete;
#if defined(_OPENMP)
  ~ProviderOneThread() { omp_set_num_threads(omp_threads_); }

 private:
  int omp_threads_ = omp_get_max_threads();
#endif
};

/// One provider call, row-major: C = op(A) · op(B) + beta C, C of m rows and n columns. Returns
/// false when the provider refused it (oneDNN reports a status; CBLAS aborts by itself).
template <class T>
bool provider_gemm(bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b,
                   index_t ldb, T beta, T* c, index_t ldc) {
  if constexpr (gemm_provider<T> == GemmProvider::onednn) {
#if defined(FG_HAVE_DNNL)
    return dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc) == dnnl_success;
#endif
  } else if constexpr (gemm_provider<T> == GemmProvider::openblas || gemm_provider<T> == GemmProvider::cblas) {
#if defined(FG_HAVE_CBLAS)
    const auto op_a = ta ? CblasTrans : CblasNoTrans, op_b = tb ? CblasTrans : CblasNoTrans;
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemm(CblasRowMajor, op_a, op_b, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    } else {
      cblas_dgemm(CblasRowMajor, op_a, op_b, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
    }
#endif
  }
  return true;
}

/// The finest row-block edge for products split over threads: every element of C must take the
/// same micro-kernel path (a row's position within the kernel's tile decides it) as in one call,
/// so that results never depend on the thread count. Providers do not say their tile, and it
/// differs by CPU (24 rows for OpenBLAS's Haswell sgemm, 8 for oneDNN's AVX-512 one), so it is
/// measured once per type: the smallest g for which splitting a product at g, 2g and 3g rows, with
/// either operand transposed, gives the same bits as one call. The pieces stay above 10^6
/// multiply-adds, where OpenBLAS's small-matrix kernels stop.
template <class T>
index_t gemm_granule() {
  static const index_t granule = [] {
    ProviderOneThread one_thread;
    constexpr index_t m = 96, n = 96, k = 1400;
    std::vector<T> a(m * k), b(k * n), whole(m * n), parts(m * n);
    std::uint64_t state = 0x9E3779B97F4A7C15ull;  // values in [-1, 1), never zero-heavy
    for (auto* v : {&a, &b}) {
      for (T& x : *v) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        x = T(double(state >> 11) * 0x1p-52 - 1.0);
      }
    }
    // Rows [r0, r1) of op(A) · op(B) into out; A is (m, k) or, transposed, (k, m); B (k, n) or (n, k).
    const auto rows = [&](bool ta, bool tb, index_t r0, index_t r1, std::vector<T>& out) {
      return provider_gemm<T>(ta, tb, r1 - r0, n, k, a.data() + (ta ? r0 : r0 * k), ta ? m : k, b.data(), tb ? k : n,
                              T(0), out.data() + r0 * n, n);
    };
    for (const index_t g : {8, 12, 16, 24, 32, 48}) {
      bool same = true;
      for (const bool ta : {false, true}) {
        for (const bool tb : {false, true}) {
          same = same && rows(ta, tb, 0, m, whole);
          for (index_t split = g; split <= 3 * g && split < m && same; split += g) {
            same = rows(ta, tb, 0, split, parts) && rows(ta, tb, split, m, parts) &&
                   std::memcmp(whole.data(), parts.data(), sizeof(T) * whole.size()) == 0;
          }
        }
      }
      if (same) {
        return g;
      }
    }
    return std::numeric_limits<index_t>::max() / 4;  // none held: products are never split
  }();
  return granule;
}

/// The fewest multiply-adds in one block: above OpenBLAS's small-matrix kernels (100^3), and
/// enough work that waking a thread for it pays.
inline constexpr double gemm_block_macs = double(1 << 20);

}  // namespace detail

/// Runs the whole (batched) product: one GEMM for stats.
template <class T>
void gemm(const GemmProblem<T, T>& p) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "matmul on the host backend: float or double only");
  if (p.batch == 0 || p.m == 0 || p.n == 0) {
    return;
  }
  stats::count_gemm();
  if (p.k == 0) {  // an empty sum: C = 0, or C unchanged when accumulating (oneDNN refuses k = 0)
    if (!p.accumulate) {
      for (index_t row = 0; row < p.batch * p.m; ++row) {
        std::fill_n(p.c + row * p.ldc, p.n, T(0));
      }
    }
    return;
  }
  if constexpr (detail::gemm_provider<T> == detail::GemmProvider::blocked) {
    for (index_t bi = 0; bi < p.batch; ++bi) {
      detail::gemm_blocked(p, bi);
    }
  } else {
    const T beta = p.accumulate ? T(1) : T(0);
    std::atomic<bool> refused{false};
    // One provider call on rows [r0, r1) of C for batch entry bi.
    auto call = [&p, beta, &refused](index_t bi, index_t r0, index_t r1) {
      [[maybe_unused]] const std::conditional_t<detail::gemm_on_pool<T>, detail::ProviderOneThread, int> one_thread{};
      // Providers want ld >= the stored row length even when the operand has one row or column.
      const auto lda = std::max<index_t>({p.a.ld, p.a.trans ? p.m : p.k, 1});
      const auto ldb = std::max<index_t>({p.b.ld, p.b.trans ? p.k : p.n, 1});
      const T* a = p.a.ptr + p.a.offset(bi, p.group()) + r0 * (p.a.trans ? 1 : p.a.ld);
      const T* b = p.b.ptr + p.b.offset(bi, p.group());
      T* c = p.c + bi * p.m * p.ldc + r0 * p.ldc;
      if (!detail::provider_gemm<T>(p.a.trans, p.b.trans, r1 - r0, p.n, p.k, a, lda, b, ldb, beta, c, p.ldc)) {
        refused.store(true, std::memory_order_relaxed);
      }
    };
    if constexpr (detail::gemm_on_pool<T>) {
      // Blocks of rows of C over the pool. Each result is bit-identical whatever the thread count:
      // block edges fall on multiples of gemm_granule, so every element of C takes the same
      // micro-kernel path as in one call, and no block is small enough for a small-matrix kernel
      // the whole product would not use. (Splitting columns changes OpenBLAS's kernel path:
      // measured, hence rows only.)
      const double macs = double(p.m) * double(p.n) * double(p.k);
      const index_t granule = detail::gemm_granule<T>();
      const index_t tiles = (p.m + granule - 1) / granule;
      const index_t threads = detail::thread_pool().threads();
      const index_t blocks = std::max<index_t>(
          1, std::min<index_t>({tiles, threads * detail::chunks_per_thread, index_t(macs / detail::gemm_block_macs)}));
      detail::run_split(p.batch * blocks, threads > 1 && p.batch * macs >= detail::gemm_block_macs,
                        [&](index_t first, index_t last) {
                          for (index_t w = first; w < last; ++w) {
                            const index_t bi = w / blocks, blk = w % blocks;
                            const index_t lo = std::min(p.m, tiles * blk / blocks * granule);
                            const index_t hi = std::min(p.m, tiles * (blk + 1) / blocks * granule);
                            if (lo < hi) {
                              call(bi, lo, hi);
                            }
                          }
                        });
    } else {
      for (index_t bi = 0; bi < p.batch; ++bi) {
        call(bi, 0, p.m);
      }
    }
    if (refused.load()) {
      throw error("matmul: the host GEMM provider (" + std::string(detail::gemm_provider<T> == detail::GemmProvider::onednn ? "oneDNN" : "CBLAS") +
                  ") refused a product of " + std::to_string(p.m) + "x" + std::to_string(p.k) + " by " +
                  std::to_string(p.k) + "x" + std::to_string(p.n));
    }
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
