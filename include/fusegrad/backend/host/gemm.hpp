// fusegrad/backend/host/gemm.hpp — matrix products on the host backend: CBLAS when the build found
// one (FG_HAVE_CBLAS, e.g. OpenBLAS), otherwise a cache-blocked kernel; both on the thread pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "fusegrad/backend/gemm_desc.hpp"
#include "fusegrad/backend/host/launch.hpp"
#include "fusegrad/eval/stats.hpp"

#if defined(FG_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {

/// C = A · B (C += A · B when accumulating) for one batch entry, by blocks of k so a panel of B
/// stays in cache.
template <class T>
void gemm_blocked(const GemmProblem<T, T>& p, index_t batch) {
  const T* a = p.a.ptr + batch * p.a.batch_stride;
  const T* bsrc = p.b.ptr + batch * p.b.batch_stride;
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

#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
/// OpenBLAS runs each call on the calling thread and the pool splits products into blocks of C:
/// one set of threads for every kernel. OpenBLAS's own threads (libgomp's or its pthreads) spin
/// while idle and wait for each other at every call, which collapses under load (thread_pool.hpp).
inline constexpr bool blas_on_pool = true;

/// Makes the OpenBLAS calls of this scope single-threaded. The pthreads build of OpenBLAS follows
/// openblas_set_num_threads (set once); the OpenMP build follows the calling thread's OpenMP thread
/// count at every call, so that is 1 for the scope and restored after (the user's own OpenMP code
/// keeps its threads).
class BlasOneThread {
 public:
  BlasOneThread() {
    static const bool once = [] {
      thread_pool();  // sized before OpenBLAS lowers this thread's OpenMP count
#if defined(_OPENMP)
      const int omp_threads = omp_get_max_threads();
#endif
      openblas_set_num_threads(1);
#if defined(_OPENMP)
      omp_set_num_threads(omp_threads);
#endif
      return true;
    }();
    (void)once;
#if defined(_OPENMP)
    omp_set_num_threads(1);
#endif
  }
  BlasOneThread(const BlasOneThread&) = delete;
  BlasOneThread& operator=(const BlasOneThread&) = delete;
#if defined(_OPENMP)
  ~BlasOneThread() { omp_set_num_threads(omp_threads_); }

 private:
  int omp_threads_ = omp_get_max_threads();
#endif
};
/// One single-threaded BLAS call: rows [r0, r0 + rows) of C = A · B, all row-major and not
/// transposed, A (·, k) with ld k, B (k, n), C with ld n.
template <class T>
void blas_rows(index_t r0, index_t rows, index_t n, index_t k, const T* a, const T* b, T* c) {
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, k, 1.0f, a + r0 * k, k, b, n, 0.0f, c + r0 * n, n);
  } else {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, k, 1.0, a + r0 * k, k, b, n, 0.0, c + r0 * n, n);
  }
}

/// The finest row-block edge for products split over threads: every element of C must take the
/// same micro-kernel path (a row's position within the kernel's tile decides it) as in one call,
/// so that results never depend on the thread count. OpenBLAS does not say its tile, and it
/// differs by CPU (24 rows measured for Haswell's sgemm), so it is measured once per type: the
/// smallest g for which splitting a product at g, 2g and 3g rows gives the same bits as one call.
/// The pieces stay above 10^6 multiply-adds, where OpenBLAS's small-matrix kernels stop.
template <class T>
index_t blas_granule() {
  static const index_t granule = [] {
    BlasOneThread one_thread;
    constexpr index_t m = 96, n = 96, k = 1400;
    std::vector<T> a(m * k), b(k * n), whole(m * n), parts(m * n);
    std::uint64_t state = 0x9E3779B97F4A7C15ull;  // values in [-1, 1), never zero-heavy
    for (auto* v : {&a, &b}) {
      for (T& x : *v) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        x = T(double(state >> 11) * 0x1p-52 - 1.0);
      }
    }
    blas_rows<T>(0, m, n, k, a.data(), b.data(), whole.data());
    for (const index_t g : {8, 12, 16, 24, 32, 48}) {
      bool same = true;
      for (index_t split = g; split <= 3 * g && split < m && same; split += g) {
        blas_rows<T>(0, split, n, k, a.data(), b.data(), parts.data());
        blas_rows<T>(split, m - split, n, k, a.data(), b.data(), parts.data());
        same = std::memcmp(whole.data(), parts.data(), sizeof(T) * whole.size()) == 0;
      }
      if (same) {
        return g;
      }
    }
    return std::numeric_limits<index_t>::max() / 4;  // none held: products are never split
  }();
  return granule;
}

#else
/// Another CBLAS runs its own threads: one call per product, from the calling thread.
inline constexpr bool blas_on_pool = false;
struct BlasOneThread {};
#endif

/// The fewest multiply-adds in one block: above OpenBLAS's small-matrix kernels (100^3), and
/// enough work that waking a thread for it pays.
inline constexpr double blas_block_macs = double(1 << 20);

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
#if defined(FG_HAVE_CBLAS)
  const T beta = p.accumulate ? T(1) : T(0);
  // One call of the BLAS on rows [r0, r1) of C for batch entry bi.
  auto call = [&p, beta](index_t bi, index_t r0, index_t r1) {
    [[maybe_unused]] const std::conditional_t<detail::blas_on_pool, detail::BlasOneThread, int> one_thread{};
    const auto ta = p.a.trans ? CblasTrans : CblasNoTrans;
    const auto tb = p.b.trans ? CblasTrans : CblasNoTrans;
    // BLAS wants ld >= the stored row length even when the operand has one row or column.
    const auto lda = std::max<index_t>({p.a.ld, p.a.trans ? p.m : p.k, 1});
    const auto ldb = std::max<index_t>({p.b.ld, p.b.trans ? p.k : p.n, 1});
    const T* a = p.a.ptr + bi * p.a.batch_stride + r0 * (p.a.trans ? 1 : p.a.ld);
    const T* b = p.b.ptr + bi * p.b.batch_stride;
    T* c = p.c + bi * p.m * p.ldc + r0 * p.ldc;
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemm(CblasRowMajor, ta, tb, r1 - r0, p.n, p.k, 1.0f, a, lda, b, ldb, beta, c, p.ldc);
    } else {
      cblas_dgemm(CblasRowMajor, ta, tb, r1 - r0, p.n, p.k, 1.0, a, lda, b, ldb, beta, c, p.ldc);
    }
  };
  if constexpr (detail::blas_on_pool) {
    // Blocks of rows of C over the pool. Each result is bit-identical whatever the thread count
    // (OpenBLAS's own threads split the same way): block edges fall on multiples of
    // blas_granule, so every element of C takes the same micro-kernel path as in one call, and no
    // block is small enough for a small-matrix kernel the whole product would not use. (Splitting
    // columns changes the kernel path: measured, hence rows only.)
    const double macs = double(p.m) * double(p.n) * double(p.k);
    const index_t granule = detail::blas_granule<T>();
    const index_t tiles = (p.m + granule - 1) / granule;
    const index_t threads = detail::thread_pool().threads();
    const index_t blocks =
        std::max<index_t>(1, std::min<index_t>({tiles, threads * detail::chunks_per_thread, index_t(macs / detail::blas_block_macs)}));
    detail::run_split(p.batch * blocks, threads > 1 && p.batch * macs >= detail::blas_block_macs, [&](index_t first, index_t last) {
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
#else
  for (index_t bi = 0; bi < p.batch; ++bi) {
    detail::gemm_blocked(p, bi);
  }
#endif
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
