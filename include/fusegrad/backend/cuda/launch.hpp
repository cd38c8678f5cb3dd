// fusegrad/backend/cuda/launch.hpp — the fused element-wise kernel on CUDA: a grid-stride loop
// over the output calling the (device-copyable) functor that evaluates the whole tree.
#pragma once

#include <algorithm>

#include "fusegrad/backend/cuda/runtime.hpp"
#include "fusegrad/core/shape.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {

inline constexpr int block_size = 256;

/// Enough blocks to fill the device a few times over; the grid-stride loop does the rest.
inline int grid_for(index_t n, int block = block_size) {
  static const int max_blocks = [] {
    int device = 0, sms = 0;
    FG_CUDA_CHECK(cudaGetDevice(&device));
    FG_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms * 32;
  }();
  return static_cast<int>(std::min<index_t>((n + block - 1) / block, max_blocks));
}

template <class F>
__global__ void __launch_bounds__(block_size) for_each_linear_kernel(index_t n, F f) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    f(i);
  }
}

template <int R, class F>
__global__ void __launch_bounds__(block_size) for_each_index_kernel(Shape<R> shape, index_t n, F f) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    Shape<R> index;
    index_t rest = i;
    FG_UNROLL for (int d = R - 1; d >= 0; --d) {
      index[d] = rest % shape[d];
      rest /= shape[d];
    }
    f(index, i);
  }
}

}  // namespace detail

/// f(i) for i in [0, n): one kernel.
template <class F>
void for_each_linear(index_t n, const F& f) {
  if (n <= 0) {
    return;
  }
  detail::report_pending();
  stats::count_kernel();
  detail::for_each_linear_kernel<<<detail::grid_for(n), detail::block_size, 0, cuda_stream()>>>(n, f);
  FG_CUDA_CHECK(cudaGetLastError());
}

/// f(index, i) for every N-d index of `shape` (i its C-order position): one kernel.
template <int R, class F>
void for_each_index(const Shape<R>& shape, const F& f) {
  const index_t n = shape.size();
  if (n <= 0) {
    return;
  }
  detail::report_pending();
  stats::count_kernel();
  detail::for_each_index_kernel<R><<<detail::grid_for(n), detail::block_size, 0, cuda_stream()>>>(shape, n, f);
  FG_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
