// fusegrad/backend/host/launch.hpp — the host backend's "kernels": parallel loops on the pool.
// Each call is one launch for stats::kernel_launches(); empty loops launch nothing.
//
// Every kernel's loop is one out-of-line function of a range [begin, end): small loops call it
// once on this thread (waking other threads costs more than a small kernel, bench/RESULTS.md
// finding 2); large ones cut [0, n) into a few chunks per thread, claimed dynamically on the
// thread pool (thread_pool.hpp: why not OpenMP). One copy of each loop is compiled, not two.
#pragma once

#include <algorithm>

#include "fusegrad/backend/host/thread_pool.hpp"
#include "fusegrad/core/shape.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

/// Loops below this many elements run on one thread: forking costs more than they do.
inline constexpr index_t parallel_threshold = 1 << 15;

namespace detail {

/// Chunks per thread: enough that a late or descheduled thread leaves little for the others to
/// wait on, few enough that claiming them costs nothing next to the work.
inline constexpr index_t chunks_per_thread = 4;

/// Chunk edges of an element loop: a multiple of every SIMD width, so each element takes the
/// same path (vector body, vector epilogue or scalar tail, whose exp or log may differ in the last
/// bit) as in a one-thread run. Results never depend on the thread count.
inline constexpr index_t simd_granule = 64;

template <class Body>
struct SplitJob {
  const Body* body;
  index_t n, chunks, granule;

  /// Where chunk c starts: the c-th of `chunks` near-equal pieces of [0, n), rounded down to a
  /// multiple of `granule`.
  index_t edge(index_t c) const { return c == chunks ? n : n * c / chunks / granule * granule; }

  static void run(const void* job, index_t c) {
    const auto& j = *static_cast<const SplitJob*>(job);
    const index_t begin = j.edge(c), end = j.edge(c + 1);
    if (begin < end) {
      (*j.body)(begin, end);
    }
  }
};

/// body(begin, end) over [0, n): one call when !parallel, else over chunks on the thread pool,
/// each (but the last) a multiple of `granule` long.
template <class Body>
void run_split(index_t n, bool parallel, const Body& body, index_t granule = 1) {
  ThreadPool* pool = parallel ? &thread_pool() : nullptr;
  if (pool == nullptr || pool->threads() == 1 || n <= granule) {
    if (n > 0) {
      body(index_t(0), n);
    }
    return;
  }
  const index_t chunks = std::min<index_t>(n / granule, pool->threads() * chunks_per_thread);
  const SplitJob<Body> job{&body, n, chunks, granule};
  pool->run(chunks, &SplitJob<Body>::run, &job);
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
  }, detail::simd_granule);
}

/// f(k, j) for every segment k in [0, segments) and j in [0, ends[k] - ends[k-1]) (ends[-1] = 0):
/// one launch over all segments (a multi-tensor update), each segment's loop vectorised.
template <class F>
void for_each_segmented(int segments, const index_t* ends, const F& f) {
  stats::count_kernel();
  const index_t total = segments > 0 ? ends[segments - 1] : 0;
  // Split the concatenated index space; each share walks the segments it overlaps. A chunk edge
  // inside a segment is rounded down to a multiple of simd_granule in the segment's own
  // coordinates (both neighbours round the same edge alike), as run_split does for one loop.
  detail::run_split(total, total >= parallel_threshold, [&](index_t begin, index_t end) FG_NOINLINE {
    const F local = f;
    for (int k = 0; k < segments; ++k) {
      const index_t first = k > 0 ? ends[k - 1] : 0, len = ends[k] - first;
      const auto local_edge = [&](index_t edge) {
        return edge <= first ? 0 : edge >= ends[k] ? len : (edge - first) / detail::simd_granule * detail::simd_granule;
      };
      const index_t lo = local_edge(begin), hi = local_edge(end);
#pragma omp simd
      for (index_t j = lo; j < hi; ++j) {
        local(k, j);
      }
    }
  });
}

/// f(index, i) for every N-d index of `shape` (i its C-order position), rows in parallel. When f
/// has `row(index, i)` (index's last coordinate 0, i the row's first position), each row is one
/// call of it and an inner loop over the cursor it returns, c(j) for j in [0, cols): the row's
/// set-up (leaf offsets, row statistics) is done once and the inner loop vectorises.
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
      Shape<R> index;  // of the row's first element: found once, then counted up (rows may be short)
      index_t rest = begin;
      for (int d = R - 2; d >= 0; --d) {
        index[d] = rest % shape[d];
        rest /= shape[d];
      }
      index[R - 1] = 0;
      for (index_t row = begin; row < end; ++row) {
        if (row != begin) {
          index[R - 1] = 0;
          for (int d = R - 2; d >= 0 && ++index[d] == shape[d]; --d) {
            index[d] = 0;
          }
        }
        if constexpr (requires { local.row(index, row); }) {
          const auto cursor = local.row(index, row * cols);
#pragma omp simd
          for (index_t j = 0; j < cols; ++j) {
            cursor(j);
          }
        } else {
          for (index_t j = 0; j < cols; ++j) {
            index[R - 1] = j;
            local(index, row * cols + j);
          }
        }
      }
    });
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
