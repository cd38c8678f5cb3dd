// fusegrad/backend/host/launch.hpp — the host backend's "kernels": OpenMP parallel loops.
// Each call is one launch for stats::kernel_launches(); empty loops launch nothing.
#pragma once

#include "fusegrad/core/shape.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

/// Loops below this many elements run on one thread: forking costs more than they do. They also
/// skip the OpenMP region altogether: libgomp builds a one-thread team even for `if (false)`, which
/// costs more than a small kernel (bench/RESULTS.md, finding 2).
inline constexpr index_t parallel_threshold = 1 << 15;

/// f(i) for i in [0, n), in parallel and vectorised.
template <class F>
void for_each_linear(index_t n, const F& f) {
  if (n <= 0) {
    return;
  }
  stats::count_kernel();
  if (n < parallel_threshold) {
    const F local = f;
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      local(i);
    }
    return;
  }
#pragma omp parallel
  {
    // A private copy: its fields (pointers, scalars) cannot alias the output, so they stay in
    // registers and the loop vectorises.
    const F local = f;
#pragma omp for simd schedule(static)
    for (index_t i = 0; i < n; ++i) {
      local(i);
    }
  }
}

/// f(k, j) for every segment k in [0, segments) and j in [0, ends[k] - ends[k-1]) (ends[-1] = 0):
/// one launch over all segments (a multi-tensor update), each segment's loop vectorised.
template <class F>
void for_each_segmented(int segments, const index_t* ends, const F& f) {
  stats::count_kernel();
  const index_t total = segments > 0 ? ends[segments - 1] : 0;
  if (total < parallel_threshold) {
    const F local = f;
    for (int k = 0; k < segments; ++k) {
      const index_t n = ends[k] - (k > 0 ? ends[k - 1] : 0);
#pragma omp simd
      for (index_t j = 0; j < n; ++j) {
        local(k, j);
      }
    }
    return;
  }
#pragma omp parallel
  {
    const F local = f;
    for (int k = 0; k < segments; ++k) {
      const index_t n = ends[k] - (k > 0 ? ends[k - 1] : 0);
#pragma omp for simd schedule(static) nowait
      for (index_t j = 0; j < n; ++j) {
        local(k, j);
      }
    }
  }
}

/// f(index, i) for every N-d index of `shape` (i its C-order position), rows in parallel.
template <int R, class F>
void for_each_index(const Shape<R>& shape, const F& f) {
  const index_t n = shape.size();
  if (n <= 0) {
    return;
  }
  stats::count_kernel();
  if constexpr (R == 0) {
    f(Shape<0>{}, 0);
  } else {
    const index_t cols = shape[R - 1];
    const index_t rows = n / cols;
    auto run_row = [&shape, cols](const F& fn, index_t row) {
      Shape<R> index;
      index_t rest = row;
      for (int d = R - 2; d >= 0; --d) {
        index[d] = rest % shape[d];
        rest /= shape[d];
      }
      for (index_t j = 0; j < cols; ++j) {
        index[R - 1] = j;
        fn(index, row * cols + j);
      }
    };
    if (n < parallel_threshold) {
      for (index_t row = 0; row < rows; ++row) {
        run_row(f, row);
      }
      return;
    }
#pragma omp parallel for schedule(static) firstprivate(f)
    for (index_t row = 0; row < rows; ++row) {
      run_row(f, row);
    }
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
