// fusegrad/backend/cuda/reduce.hpp — fused map-reductions on CUDA, one kernel each.
//
// Full reduction: every block folds a grid-stride slice of load(i) and reduces it with
// cub::BlockReduce; the last block to finish (an atomic ticket) folds the block results in order
// and writes the answer. No temporary holds the mapped input, and the result is deterministic.
//
// Axis reduction, input (outer, len, inner). With many outputs (enough threads for two waves of the
// device): over the innermost axis one warp per output; otherwise one thread per output walking the
// axis, so neighbouring threads read neighbouring addresses. With few outputs the axis is also cut
// into `splits` fixed chunks, one block each, so that the grid fills the device:
//   inner == 1  a block per (row, chunk), reduced with cub::BlockReduce;
//   inner  > 1  a block per (outer index, tile of <= 32 columns, chunk): threads (tx, ty) read
//               column j0 + tx at axis positions ty, ty + depth, ... (a warp reads contiguous
//               memory), then fold over ty in shared memory.
// The last block of each output group (per row or per column tile, its own ticket) folds the chunk
// results in chunk order and writes finish(acc, len). Chunks, fold orders and tile shapes depend
// only on the shape and the device's SM count, never on timing: results are bitwise reproducible.
//
// Every kernel here is declared __launch_bounds__(block_size, 1): with the thread bound alone, ptxas
// (CUDA 13, sm_90) held loads that call a routine (64-bit division in an indexed load, exp or sin
// in double) to 32-48 registers for full occupancy and spilled to local memory; these kernels are
// memory-bound, and a spill in the inner loop costs more than the occupancy it buys.
#pragma once

#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "fusegrad/backend/cuda/launch.hpp"
#include "fusegrad/memory/buffer.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {

template <class Red>
struct Combine {
  template <class A>
  FG_HOST_DEVICE A operator()(const A& a, const A& b) const {
    return Red::combine(a, b);
  }
};

/// What the reductions know about the device, and their tickets; see reduce_ticket().
struct ReduceDevice {
  unsigned int* tickets = nullptr;  // (target_blocks), all zero between launches
  index_t target_blocks = 1;        // blocks of block_size threads in two full waves of the device
};

/// Created once, before any capture (Graph::capture calls reduce_ticket(): cudaMalloc cannot be
/// captured). The ticket array is not sized per launch: a split reduction has fewer output groups
/// than target_blocks (split_axis), so target_blocks tickets always suffice, and the last block of
/// each group sets its ticket back to zero, so every launch and every graph replay starts from
/// zero with no memset (kernels on cuda_stream() run one after another).
inline const ReduceDevice& reduce_device() {
  static const ReduceDevice device = [] {
    int id = 0, sms = 0, threads = 0;
    FG_CUDA_CHECK(cudaGetDevice(&id));
    FG_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, id));
    FG_CUDA_CHECK(cudaDeviceGetAttribute(&threads, cudaDevAttrMaxThreadsPerMultiProcessor, id));
    ReduceDevice d;
    d.target_blocks = std::max<index_t>(1, 2 * static_cast<index_t>(sms) * (threads / block_size));
    void* p = nullptr;
    const std::size_t bytes = static_cast<std::size_t>(d.target_blocks) * sizeof(unsigned int);
    FG_CUDA_CHECK(cudaMalloc(&p, bytes));
    // On our stream, so that the first reduction's kernel is ordered after it whatever the default
    // stream mode (per-thread default streams do not synchronise with cuda_stream()).
    FG_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
    d.tickets = static_cast<unsigned int*>(p);
    return d;
  }();
  return device;
}

/// The reductions' ticket counters: [0] for a full reduction, [g] for output group g of a split
/// axis reduction (the two never run at once: one stream).
inline unsigned int* reduce_ticket() { return reduce_device().tickets; }

/// The widest word that tiles T exactly and that T's alignment allows.
template <class T>
using coherent_word_t = std::conditional_t<
    sizeof(T) % 4 == 0 && alignof(T) >= 4, unsigned int,
    std::conditional_t<sizeof(T) % 2 == 0 && alignof(T) >= 2, unsigned short, unsigned char>>;

/// *p read from L2 (ld.global.cg), past this SM's L1, which may hold a stale copy of what another
/// block wrote before its __threadfence(). Word by word: a struct accumulator ({max, scaled_sum},
/// {value, index}) has no volatile copy constructor, so `volatile const T&` cannot be read as a T.
template <class T>
FG_DEVICE T load_coherent(const T* p) {
  static_assert(std::is_trivially_copyable_v<T>, "load_coherent: needs a trivially copyable type");
  using Word = coherent_word_t<T>;
  constexpr int words = sizeof(T) / sizeof(Word);
  const Word* source = reinterpret_cast<const Word*>(p);
  Word copy[words];
  FG_UNROLL for (int w = 0; w < words; ++w) {
    copy[w] = __ldcg(source + w);
  }
  T value;
  memcpy(&value, copy, sizeof(T));
  return value;
}

template <class Red, class Load, class Out>
__global__ void __launch_bounds__(block_size, 1)
    reduce_all_kernel(index_t n, Load load, typename Red::acc_type* partial, unsigned int* ticket, Out* out) {
  using Acc = typename Red::acc_type;
  using BlockReduce = cub::BlockReduce<Acc, block_size>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ bool last;
  Acc acc = Red::identity();
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    acc = Red::combine(acc, Red::lift(load(i), i));
  }
  acc = BlockReduce(temp).Reduce(acc, Combine<Red>{});
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = acc;
    __threadfence();
    last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) {
    return;
  }
  __threadfence();
  Acc total = Red::identity();
  for (unsigned int b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
    total = Red::combine(total, load_coherent(partial + b));
  }
  __syncthreads();  // `temp` is reused
  total = BlockReduce(temp).Reduce(total, Combine<Red>{});
  if (threadIdx.x == 0) {
    *out = static_cast<Out>(Red::finish(total, n));
    *ticket = 0;
  }
}

template <class Red, class Load, class Out>
__global__ void __launch_bounds__(block_size, 1)
    reduce_rows_kernel(index_t rows, index_t len, Load load, Out* out) {
  using Acc = typename Red::acc_type;
  using WarpReduce = cub::WarpReduce<Acc>;
  constexpr int warps = block_size / 32;
  __shared__ typename WarpReduce::TempStorage temp[warps];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (index_t row = static_cast<index_t>(blockIdx.x) * warps + warp; row < rows;
       row += static_cast<index_t>(gridDim.x) * warps) {
    Acc acc = Red::identity();
    for (index_t l = lane; l < len; l += 32) {
      acc = Red::combine(acc, Red::lift(load(row * len + l), l));
    }
    acc = WarpReduce(temp[warp]).Reduce(acc, Combine<Red>{});
    if (lane == 0) {
      out[row] = static_cast<Out>(Red::finish(acc, len));
    }
  }
}

template <class Red, class Load, class Out>
__global__ void __launch_bounds__(block_size, 1)
    reduce_strided_kernel(index_t outer, index_t len, index_t inner, Load load, Out* out) {
  using Acc = typename Red::acc_type;
  const index_t total = outer * inner;
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t t = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const index_t o = t / inner, j = t % inner;
    Acc acc = Red::identity();
    for (index_t l = 0; l < len; ++l) {
      acc = Red::combine(acc, Red::lift(load((o * len + l) * inner + j), l));
    }
    out[t] = static_cast<Out>(Red::finish(acc, len));
  }
}

/// How an axis of `len` positions is cut: `splits` chunks of `chunk` positions (the last one
/// shorter), one block each.
struct AxisSplit {
  index_t splits = 1;
  index_t chunk = 0;
};

/// Enough chunks that `groups` × splits blocks make about target_blocks (two waves), each chunk a
/// multiple of `step` positions and at least `min_chunk` long. @post splits > 1 only when
/// groups < target_blocks, so one ticket per group fits reduce_ticket()'s array.
inline AxisSplit split_axis(index_t groups, index_t len, index_t step, index_t min_chunk) {
  const index_t target = reduce_device().target_blocks;
  index_t splits = groups >= target ? 1 : (target + groups - 1) / groups;
  splits = std::max<index_t>(1, std::min(splits, len / min_chunk));
  AxisSplit s;
  s.chunk = ((len + splits - 1) / splits + step - 1) / step * step;
  s.splits = (len + s.chunk - 1) / s.chunk;  // every chunk non-empty
  return s;
}

/// Each thread of a split reduction folds at least this many elements.
inline constexpr index_t split_min_per_thread = 4;

/// Column tiles for inner > 1: `tiles` tiles of `width` <= 32 columns (balanced, so inner = 40 gives
/// two of 20), and `depth` = block_size / width axis positions read per step.
struct ColumnTiles {
  index_t tiles = 1;
  int width = 1;
  int depth = block_size;
};
inline ColumnTiles column_tiles(index_t inner) {
  ColumnTiles t;
  t.tiles = (inner + 31) / 32;
  t.width = static_cast<int>((inner + t.tiles - 1) / t.tiles);
  t.depth = block_size / t.width;
  return t;
}

/// Takes the group's ticket once the block's chunk results are written; true in every thread of the
/// group's last block, which then sees every block's results (read them with load_coherent). Every
/// thread of the block must call it: each fences its own writes before the barrier, and thread 0
/// fences again before the atomic (a release of the whole block's writes).
FG_DEVICE bool arrive_last(unsigned int* ticket, unsigned int splits, bool* last) {
  __threadfence();  // this thread's chunk results are visible device-wide before the ticket is taken
  __syncthreads();  // every writer has fenced
  if (threadIdx.x == 0) {
    __threadfence();
    *last = atomicAdd(ticket, 1u) == splits - 1;
  }
  __syncthreads();
  if (*last) {
    __threadfence();  // the other blocks' results, read after this, are the final ones
  }
  return *last;
}

/// Folds acc over ty (threads (tx, ty), ty < depth) in shared memory: neighbours first, then pairs
/// of pairs, the smaller ty always the left operand; a fixed order. @post the result for column tx,
/// in every thread of that column. Every thread of the block must call it.
template <class Red, class Acc>
FG_DEVICE Acc fold_depth(Acc acc, Acc* shared, int tx, int ty, int width, int depth) {
  __syncthreads();  // an earlier fold's result has been read
  if (ty < depth) {
    shared[ty * width + tx] = acc;
  }
  __syncthreads();
  for (int s = 1; s < depth; s *= 2) {
    // ty + s is an odd multiple of s: no thread writes it in this step.
    if ((ty & (2 * s - 1)) == 0 && ty + s < depth) {
      shared[ty * width + tx] = Red::combine(shared[ty * width + tx], shared[(ty + s) * width + tx]);
    }
    __syncthreads();
  }
  return shared[tx];
}

/// (rows, len) -> (rows). Block b reduces chunk b % splits of row b / splits; with splits > 1 the
/// chunk results go to partial (rows, splits) and the last block of the row folds them.
template <class Red, class Load, class Out>
__global__ void __launch_bounds__(block_size, 1)
    reduce_rows_split_kernel(index_t len, index_t chunk, unsigned int splits, Load load,
                             typename Red::acc_type* partial, unsigned int* tickets, Out* out) {
  using Acc = typename Red::acc_type;
  using BlockReduce = cub::BlockReduce<Acc, block_size>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ bool last;
  const index_t row = blockIdx.x / splits;
  const index_t begin = static_cast<index_t>(blockIdx.x % splits) * chunk;
  const index_t end = std::min(len, begin + chunk);
  Acc acc = Red::identity();
  for (index_t l = begin + threadIdx.x; l < end; l += block_size) {
    acc = Red::combine(acc, Red::lift(load(row * len + l), l));
  }
  acc = BlockReduce(temp).Reduce(acc, Combine<Red>{});
  if (splits == 1) {
    if (threadIdx.x == 0) {
      out[row] = static_cast<Out>(Red::finish(acc, len));
    }
    return;
  }
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = acc;  // (row, chunk)
  }
  if (!arrive_last(tickets + row, splits, &last)) {
    return;
  }
  // Thread t folds chunks [t * per, (t + 1) * per): chunk order, whichever block came last.
  const Acc* chunks = partial + row * splits;  // (splits)
  const unsigned int per = (splits + block_size - 1) / block_size;
  const unsigned int stop = std::min(splits, (threadIdx.x + 1) * per);
  Acc total = Red::identity();
  for (unsigned int c = threadIdx.x * per; c < stop; ++c) {
    total = Red::combine(total, load_coherent(chunks + c));
  }
  __syncthreads();  // `temp` is reused
  total = BlockReduce(temp).Reduce(total, Combine<Red>{});
  if (threadIdx.x == 0) {
    out[row] = static_cast<Out>(Red::finish(total, len));
    tickets[row] = 0;
  }
}

/// (outer, len, inner) -> (outer, inner), inner > 1. Block b reduces chunk b % splits of group
/// b / splits = (o, tile): columns j0 + tx of the tile, thread (tx, ty) reading axis positions
/// ty, ty + depth, ... of the chunk. With splits > 1 the chunk results go to partial
/// (groups, splits, width) and the last block of the group folds them.
template <class Red, class Load, class Out>
__global__ void __launch_bounds__(block_size, 1)
    reduce_columns_split_kernel(index_t len, index_t inner, unsigned int tiles, int width, int depth,
                                index_t chunk, unsigned int splits, Load load,
                                typename Red::acc_type* partial, unsigned int* tickets, Out* out) {
  using Acc = typename Red::acc_type;
  __shared__ alignas(Acc) unsigned char storage[block_size * sizeof(Acc)];
  __shared__ bool last;
  Acc* shared = reinterpret_cast<Acc*>(storage);  // (depth, width)
  const unsigned int group = blockIdx.x / splits;  // (o, tile)
  const index_t o = group / tiles;
  const int tx = static_cast<int>(threadIdx.x) % width, ty = static_cast<int>(threadIdx.x) / width;
  const index_t j = static_cast<index_t>(group % tiles) * width + tx;
  const bool column = j < inner && ty < depth;  // this thread reads column j
  const index_t begin = static_cast<index_t>(blockIdx.x % splits) * chunk;
  const index_t end = std::min(len, begin + chunk);
  Acc acc = Red::identity();
  if (column) {
    for (index_t l = begin + ty; l < end; l += depth) {
      acc = Red::combine(acc, Red::lift(load((o * len + l) * inner + j), l));
    }
  }
  acc = fold_depth<Red>(acc, shared, tx, ty, width, depth);
  const bool writer = column && ty == 0;
  if (splits == 1) {
    if (writer) {
      out[o * inner + j] = static_cast<Out>(Red::finish(acc, len));
    }
    return;
  }
  if (writer) {
    partial[static_cast<index_t>(blockIdx.x) * width + tx] = acc;  // (group, chunk, tx)
  }
  if (!arrive_last(tickets + group, splits, &last)) {
    return;
  }
  // Thread (tx, ty) folds chunks [ty * per, (ty + 1) * per) of column tx: chunk order.
  const Acc* chunks = partial + static_cast<index_t>(group) * splits * width + tx;  // (splits), stride width
  const unsigned int per = (splits + depth - 1) / depth;
  const unsigned int first = static_cast<unsigned int>(ty) * per;
  const unsigned int stop = std::min(splits, first + per);
  Acc total = Red::identity();
  if (column) {
    for (unsigned int c = first; c < stop; ++c) {
      total = Red::combine(total, load_coherent(chunks + static_cast<index_t>(c) * width));
    }
  }
  total = fold_depth<Red>(total, shared, tx, ty, width, depth);
  if (writer) {
    out[o * inner + j] = static_cast<Out>(Red::finish(total, len));
  }
  if (threadIdx.x == 0) {
    tickets[group] = 0;
  }
}

}  // namespace detail

/// *out = finish(Red over load(i), i in [0, n)): one kernel.
template <class Red, class Load, class Out>
void reduce_all(index_t n, const Load& load, Out* out) {
  const int grid = std::max(1, detail::grid_for(n));
  Buffer<typename Red::acc_type> partial(grid);
  unsigned int* ticket = detail::reduce_ticket();
  stats::count_kernel();
  detail::reduce_all_kernel<Red><<<grid, detail::block_size, 0, cuda_stream()>>>(
      n, load, partial.data(), ticket, out);
  FG_CUDA_CHECK(cudaGetLastError());
}

/// The input viewed as (outer, len, inner), C order; out[o * inner + j] = finish(Red over
/// load((o * len + l) * inner + j), l in [0, len)): one kernel.
///
/// Few outputs (fewer threads than two waves of the device in the kernels above) and a long enough
/// axis: the axis is split into chunks of at least split_min_per_thread elements per thread, so
/// that about two waves of blocks run; otherwise one warp (inner == 1) or one thread per output.
template <class Red, class Load, class Out>
void reduce_axis(index_t outer, index_t len, index_t inner, const Load& load, Out* out) {
  if (outer * inner == 0) {
    return;
  }
  detail::report_pending();
  using Acc = typename Red::acc_type;
  const index_t target_threads = detail::reduce_device().target_blocks * detail::block_size;
  constexpr index_t min_rows_chunk = detail::block_size * detail::split_min_per_thread;
  if (inner == 1) {
    if (outer * 32 >= target_threads || len < min_rows_chunk) {
      const int grid = detail::grid_for(outer * 32);
      stats::count_kernel();
      detail::reduce_rows_kernel<Red><<<grid, detail::block_size, 0, cuda_stream()>>>(outer, len, load, out);
      FG_CUDA_CHECK(cudaGetLastError());
      return;
    }
    const detail::AxisSplit split =
        detail::split_axis(outer, len, detail::block_size, min_rows_chunk);
    const index_t blocks = outer * split.splits;
    Buffer<Acc> partial(split.splits > 1 ? blocks : 0);
    stats::count_kernel();
    detail::reduce_rows_split_kernel<Red>
        <<<static_cast<unsigned int>(blocks), detail::block_size, 0, cuda_stream()>>>(
            len, split.chunk, static_cast<unsigned int>(split.splits), load, partial.data(),
            detail::reduce_ticket(), out);
    FG_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const detail::ColumnTiles tiles = detail::column_tiles(inner);
  const index_t min_columns_chunk = tiles.depth * detail::split_min_per_thread;
  if (outer * inner >= target_threads || len < min_columns_chunk) {
    const int grid = detail::grid_for(outer * inner);
    stats::count_kernel();
    detail::reduce_strided_kernel<Red><<<grid, detail::block_size, 0, cuda_stream()>>>(outer, len, inner, load, out);
    FG_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const index_t groups = outer * tiles.tiles;
  const detail::AxisSplit split = detail::split_axis(groups, len, tiles.depth, min_columns_chunk);
  const index_t blocks = groups * split.splits;
  Buffer<Acc> partial(split.splits > 1 ? blocks * tiles.width : 0);
  stats::count_kernel();
  detail::reduce_columns_split_kernel<Red>
      <<<static_cast<unsigned int>(blocks), detail::block_size, 0, cuda_stream()>>>(
          len, inner, static_cast<unsigned int>(tiles.tiles), tiles.width, tiles.depth, split.chunk,
          static_cast<unsigned int>(split.splits), load, partial.data(), detail::reduce_ticket(), out);
  FG_CUDA_CHECK(cudaGetLastError());
}

namespace detail {
/// Element i = m * len + l of the input (outer, mid, inner) regrouped as (mid, outer · inner):
/// l = o · inner + j reads position (o · mid + m) · inner + j.
template <class Load>
struct LoadKept {
  Load load;
  index_t mid, inner, len;
  FG_DEVICE typename std::remove_cvref_t<decltype(load(index_t(0)))> operator()(index_t i) const {
    const index_t m = i / len, l = i % len;
    return load(((l / inner) * mid + m) * inner + l % inner);
  }
};
}  // namespace detail

/// The input viewed as (outer, mid, inner), C order; for every m:
/// out[m] = finish(Red over load((o * mid + m) * inner + j), (o, j) in C order at positions
/// o * inner + j): one kernel, the rows path of reduce_axis over the regrouped input (its split
/// kernel when there are few outputs, as for batch statistics over a few channels).
template <class Red, class Load, class Out>
void reduce_kept(index_t outer, index_t mid, index_t inner, const Load& load, Out* out) {
  if (outer == 1 || mid == 1) {
    reduce_axis<Red>(mid, outer * inner, 1, load, out);  // already (mid, len) or (1, len) rows
  } else if (inner == 1) {
    reduce_axis<Red>(1, outer, mid, load, out);
  } else {
    reduce_axis<Red>(mid, outer * inner, 1, detail::LoadKept<Load>{load, mid, inner, outer * inner}, out);
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
