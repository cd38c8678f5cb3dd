// fusegrad/backend/host/reduce.hpp — reductions on the host backend: one parallel loop each.
//
// Results are deterministic and independent of the thread count: the input is cut into fixed
// chunks, each reduced in 8 interleaved lanes (so the compiler can vectorise), and the chunk
// results are combined in order.
#pragma once

#include <algorithm>
#include <vector>

#include "fusegrad/backend/host/launch.hpp"
#include "fusegrad/core/shape.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {
inline constexpr index_t reduce_chunk = 1 << 14;
inline constexpr int reduce_lanes = 8;

/// Red over load(i) for i in [begin, end), each lifted with its position i.
template <class Red, class Load>
typename Red::acc_type reduce_range(const Load& load, index_t begin, index_t end) {
  typename Red::acc_type lane[reduce_lanes];
  for (auto& a : lane) {
    a = Red::identity();
  }
  index_t i = begin;
  for (; i + reduce_lanes <= end; i += reduce_lanes) {
    // The loads first, in a loop of their own: they vectorise (an element-wise prologue with exp
    // in it costs 16 lanes' time for one on AVX-512), where the combine step, branching on the
    // values (max, log-sum-exp), does not.
    decltype(load(i)) value[reduce_lanes];
#pragma omp simd
    for (int l = 0; l < reduce_lanes; ++l) {
      value[l] = load(i + l);
    }
    if constexpr (requires { Red::lift_block(value); }) {
      lane[0] = Red::combine(lane[0], Red::lift_block(value));  // the reducer's own block rule
    } else {
      for (int l = 0; l < reduce_lanes; ++l) {
        lane[l] = Red::combine(lane[l], Red::lift(value[l], i + l));
      }
    }
  }
  for (; i < end; ++i) {
    lane[0] = Red::combine(lane[0], Red::lift(load(i), i));
  }
  for (int l = 1; l < reduce_lanes; ++l) {
    lane[0] = Red::combine(lane[0], lane[l]);
  }
  return lane[0];
}

/// reduce_axis's loops over (outer, len, inner); stretch(first) returns c with c(j) = the input at
/// position first + j, for the j a stretch reads.
template <class Red, class Out, class Stretch>
void reduce_stretches(index_t outer, index_t len, index_t inner, bool parallel, Out* out,
                      const Stretch& stretch) {
  using Acc = typename Red::acc_type;
  if (inner == 1) {  // rows: each output reduces a contiguous stretch, in 8 lanes
    run_split(outer, parallel, [&](index_t first, index_t last) FG_NOINLINE {
      for (index_t o = first; o < last; ++o) {
        const auto row = stretch(o * len);
        out[o] = static_cast<Out>(Red::finish(reduce_range<Red>(row, 0, len), len));
      }
    });
    return;
  }
  constexpr index_t block = 64;  // output columns walked together: contiguous input reads
  const index_t blocks = (inner + block - 1) / block;
  run_split(outer * blocks, parallel, [&](index_t first, index_t last) FG_NOINLINE {
    for (index_t ob = first; ob < last; ++ob) {
      const index_t o = ob / blocks;
      const index_t j0 = (ob % blocks) * block;
      const index_t width = std::min(block, inner - j0);
      Acc acc[block];
      for (index_t j = 0; j < width; ++j) {
        acc[j] = Red::identity();
      }
      for (index_t l = 0; l < len; ++l) {
        const auto columns = stretch((o * len + l) * inner);
        for (index_t j = 0; j < width; ++j) {
          acc[j] = Red::combine(acc[j], Red::lift(columns(j0 + j), l));
        }
      }
      for (index_t j = 0; j < width; ++j) {
        out[o * inner + j0 + j] = static_cast<Out>(Red::finish(acc[j], len));
      }
    }
  });
}
}  // namespace detail

/// *out = finish(Red over load(i), i in [0, n)).
template <class Red, class Load, class Out>
void reduce_all(index_t n, const Load& load, Out* out) {
  stats::count_kernel();
  using Acc = typename Red::acc_type;
  const index_t chunks = std::max<index_t>(1, (n + detail::reduce_chunk - 1) / detail::reduce_chunk);
  std::vector<Acc> partial(static_cast<std::size_t>(chunks));
  // Chunk results in order: deterministic whatever the thread count. One loop body, compiled
  // once (see launch.hpp).
  detail::run_split(chunks, chunks > 1, [&](index_t first, index_t last) FG_NOINLINE {
    for (index_t c = first; c < last; ++c) {
      const index_t begin = c * detail::reduce_chunk;
      partial[c] = detail::reduce_range<Red>(load, begin, std::min(n, begin + detail::reduce_chunk));
    }
  });
  Acc total = partial[0];
  for (index_t c = 1; c < chunks; ++c) {
    total = Red::combine(total, partial[c]);
  }
  *out = static_cast<Out>(Red::finish(total, n));
}

/// The input viewed as (outer, len, inner), C order; for every (o, j):
/// out[o * inner + j] = finish(Red over load((o * len + l) * inner + j), l in [0, len)).
///
/// Each output reads stretches of consecutive positions: a whole row of `len` (inner == 1) or a
/// block of up to 64 columns of one (o, l). When such a stretch always lies in one row of the
/// input's last axis and `load` offers row cursors (plan.hpp's LoadIndexed), the stretch is read
/// through the cursor of its row: index arithmetic once per stretch, not per element.
template <class Red, class Load, class Out>
void reduce_axis(index_t outer, index_t len, index_t inner, const Load& load, Out* out) {
  if (outer * inner == 0) {
    return;
  }
  stats::count_kernel();
  const bool parallel = outer * inner * std::max<index_t>(len, 1) >= (1 << 15);
  if constexpr (requires { load.row(index_t(0)); }) {
    if (load.rows_along_last_axis(inner == 1 ? len : inner)) {
      detail::reduce_stretches<Red>(outer, len, inner, parallel, out,
                                    [&load](index_t first) { return load.row(first); });
      return;
    }
  }
  detail::reduce_stretches<Red>(outer, len, inner, parallel, out, [&load](index_t first) {
    return [&load, first](index_t j) { return load(first + j); };
  });
}

/// The input viewed as (outer, mid, inner), C order; for every m:
/// out[m] = finish(Red over load((o * mid + m) * inner + j), (o, j) in C order at positions
/// o * inner + j): one parallel loop over m. Each (o, m) is a stretch of `inner` consecutive
/// positions, read through row cursors when `load` has them (rows of the last axis tile a
/// stretch: inner is a product of trailing extents); the stretches' results combine in o order.
template <class Red, class Load, class Out>
void reduce_kept(index_t outer, index_t mid, index_t inner, const Load& load, Out* out) {
  if (outer == 1 || mid == 1) {
    reduce_axis<Red>(mid, outer * inner, 1, load, out);  // already (mid, len) or (1, len) rows
    return;
  }
  if (inner == 1) {
    reduce_axis<Red>(1, outer, mid, load, out);
    return;
  }
  if (mid == 0) {
    return;
  }
  stats::count_kernel();
  const index_t count = outer * inner;
  index_t row = inner;  // the stretch read through one cursor
  bool cursors = false;
  if constexpr (requires { load.row(index_t(0)); }) {
    const index_t last = load.last_extent();
    cursors = last > 0 && inner % last == 0;
    row = cursors ? last : inner;
  }
  const bool parallel = mid * count >= (1 << 15);
  detail::run_split(mid, parallel, [&](index_t first, index_t end) FG_NOINLINE {
    for (index_t m = first; m < end; ++m) {
      auto acc = Red::identity();
      for (index_t o = 0; o < outer; ++o) {
        const index_t base = (o * mid + m) * inner;  // the stretch's first input position
        for (index_t r = 0; r < inner; r += row) {
          const index_t begin = o * inner + r;  // its first reduced position
          if constexpr (requires { load.row(index_t(0)); }) {
            if (cursors) {
              const auto c = load.row(base + r);
              acc = Red::combine(acc, detail::reduce_range<Red>([&c, begin](index_t i) { return c(i - begin); },
                                                                begin, begin + row));
              continue;
            }
          }
          acc = Red::combine(acc, detail::reduce_range<Red>(
                                      [&load, base, shift = o * inner](index_t i) { return load(base + i - shift); },
                                      begin, begin + row));
        }
      }
      out[m] = static_cast<Out>(Red::finish(acc, count));
    }
  });
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
