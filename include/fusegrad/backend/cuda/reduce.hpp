// fusegrad/backend/cuda/reduce.hpp — fused map-reductions on CUDA, one kernel each.
//
// Full reduction: every block folds a grid-stride slice of load(i) and reduces it with
// cub::BlockReduce; the last block to finish (an atomic ticket) folds the block results in order
// and writes the answer. No temporary holds the mapped input, and the result is deterministic.
// Axis reduction over the innermost axis: one warp per output; otherwise one thread per output
// walking the axis, so neighbouring threads read neighbouring addresses.
#pragma once

#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>

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

/// A ticket counter the last block of a full reduction resets to zero, allocated once (before any
/// capture: Graph::capture creates it, as cudaMalloc cannot be captured).
inline unsigned int* reduce_ticket() {
  static unsigned int* ticket = [] {
    void* p = nullptr;
    FG_CUDA_CHECK(cudaMalloc(&p, sizeof(unsigned int)));
    // On our stream, so that the first reduction's kernel is ordered after it whatever the default
    // stream mode (per-thread default streams do not synchronise with cuda_stream()).
    FG_CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(unsigned int), cuda_stream()));
    return static_cast<unsigned int*>(p);
  }();
  return ticket;
}

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
__global__ void __launch_bounds__(block_size)
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
__global__ void __launch_bounds__(block_size)
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
__global__ void __launch_bounds__(block_size)
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
template <class Red, class Load, class Out>
void reduce_axis(index_t outer, index_t len, index_t inner, const Load& load, Out* out) {
  if (outer * inner == 0) {
    return;
  }
  detail::report_pending();
  stats::count_kernel();
  if (inner == 1) {
    const int grid = detail::grid_for(outer * 32);
    detail::reduce_rows_kernel<Red><<<grid, detail::block_size, 0, cuda_stream()>>>(outer, len, load, out);
  } else {
    const int grid = detail::grid_for(outer * inner);
    detail::reduce_strided_kernel<Red><<<grid, detail::block_size, 0, cuda_stream()>>>(outer, len, inner, load, out);
  }
  FG_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
