// fusegrad/backend/host/gemm.hpp — matrix products on the host backend: CBLAS when the build found
// one (FG_HAVE_CBLAS, e.g. OpenBLAS), otherwise a cache-blocked OpenMP kernel.
#pragma once

#include <algorithm>
#include <vector>

#include "fusegrad/backend/gemm_desc.hpp"
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
#pragma omp parallel for schedule(static) if (p.m * p.n * p.k >= (1 << 16))
  for (index_t i = 0; i < p.m; ++i) {
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
}

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
  const auto ta = p.a.trans ? CblasTrans : CblasNoTrans;
  const auto tb = p.b.trans ? CblasTrans : CblasNoTrans;
  // BLAS wants ld >= the stored row length even when the operand has one row or column.
  const auto lda = std::max<index_t>({p.a.ld, p.a.trans ? p.m : p.k, 1});
  const auto ldb = std::max<index_t>({p.b.ld, p.b.trans ? p.k : p.n, 1});
  const T beta = p.accumulate ? T(1) : T(0);
  for (index_t bi = 0; bi < p.batch; ++bi) {
    const T* a = p.a.ptr + bi * p.a.batch_stride;
    const T* b = p.b.ptr + bi * p.b.batch_stride;
    T* c = p.c + bi * p.m * p.ldc;
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemm(CblasRowMajor, ta, tb, p.m, p.n, p.k, 1.0f, a, lda, b, ldb, beta, c, p.ldc);
    } else {
      cblas_dgemm(CblasRowMajor, ta, tb, p.m, p.n, p.k, 1.0, a, lda, b, ldb, beta, c, p.ldc);
    }
  }
#else
  for (index_t bi = 0; bi < p.batch; ++bi) {
    detail::gemm_blocked(p, bi);
  }
#endif
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
