// fusegrad/backend/host/launch.hpp — the host backend's "kernels": OpenMP parallel loops.
// Each call is one launch for stats::kernel_launches(); empty loops launch nothing.
//
// Every kernel's loop is one out-of-line function of a range [begin, end): small loops call it
// once on this thread (no OpenMP region at all: libgomp builds a one-thread team even for
// `if (false)`, which costs more than a small kernel, bench/RESULTS.md finding 2); large ones call
// it from every thread of a team on a static share. One copy of each loop is compiled, not two.
#pragma once

#include <algorithm>

#include "fusegrad/core/shape.hpp"
#include "fusegrad/eval/stats.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fusegrad::inline FG_BACKEND_NS::backend {

/// Loops below this many elements run on one thread: forking costs more than they do.
inline constexpr index_t parallel_threshold = 1 << 15;

namespace detail {

/// This thread's share [begin, end) of [0, n) under a static split over its team (all of it
/// outside a parallel region).
inline void static_share(index_t n, index_t& begin, index_t& end) {
#if defined(_OPENMP)
  const index_t t = omp_get_thread_num(), threads = omp_get_num_threads();
#else
  const index_t t = 0, threads = 1;
#endif
  const index_t chunk = n / threads, extra = n % threads;
  begin = t * chunk + std::min(t, extra);
  end = begin + chunk + (t < extra ? 1 : 0);
}

/// body(begin, end) over [0, n): one call when !parallel, else one per thread of a team.
template <class Body>
void run_split(index_t n, bool parallel, const Body& body) {
  if (!parallel) {
    body(index_t(0), n);
    return;
  }
#pragma omp parallel
  {
    index_t begin = 0, end = 0;
    static_share(n, begin, end);
    if (begin < end) {
      body(begin, end);
    }
  }
}

}  // namespace detail

/// f(i) for i in [0, n), in parallel and vectorised.
template <class F>
void for_each_linear(index_t n, const F& f) {
  if (n <= 0) {
    return;
  }
  stats::count_kernel();
  detail::run_split(n, n >= parallel_threshold, [&f](index_t begin, index_t end) FG_NOINLINE {
    // A private copy: its fields (pointers, scalars) cannot alias the output, so they stay in
    // registers and the loop vectorises.
    const F local = f;
#pragma omp simd
    for (index_t i = begin; i < end; ++i) {
      local(i);
    }
  });
}

/// f(k, j) for every segment k in [0, segments) and j in [0, ends[k] - ends[k-1]) (ends[-1] = 0):
/// one launch over all segments (a multi-tensor update), each segment's loop vectorised.
template <class F>
void for_each_segmented(int segments, const index_t* ends, const F& f) {
  stats::count_kernel();
  const index_t total = segments > 0 ? ends[segments - 1] : 0;
  // Split the concatenated index space; each share walks the segments it overlaps.
  detail::run_split(total, total >= parallel_threshold, [&](index_t begin, index_t end) FG_NOINLINE {
    const F local = f;
    for (int k = 0; k < segments; ++k) {
      const index_t first = k > 0 ? ends[k - 1] : 0;
      const index_t lo = std::max(begin, first) - first, hi = std::min(end, ends[k]) - first;
#pragma omp simd
      for (index_t j = lo; j < hi; ++j) {
        local(k, j);
      }
    }
  });
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
    detail::run_split(rows, n >= parallel_threshold, [&f, &shape, cols](index_t begin, index_t end) FG_NOINLINE {
      const F local = f;
      for (index_t row = begin; row < end; ++row) {
        Shape<R> index;
        index_t rest = row;
        for (int d = R - 2; d >= 0; --d) {
          index[d] = rest % shape[d];
          rest /= shape[d];
        }
        for (index_t j = 0; j < cols; ++j) {
          index[R - 1] = j;
          local(index, row * cols + j);
        }
      }
    });
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
