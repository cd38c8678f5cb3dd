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

/// f.write_lanes(c * V) for every whole step c of V elements, then f(i) for the tail: 128-bit
/// loads and stores on the contiguous fast path. With `steps` = 0 (a pointer not aligned to a
/// step) the tail loop is the whole scalar grid-stride loop: one kernel for both cases, so a tree
/// compiles one linear kernel, not two.
template <int V, class F>
__global__ void __launch_bounds__(block_size) for_each_lanes_kernel(index_t n, index_t steps, F f) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  const index_t first = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (index_t c = first; c < steps; c += stride) {
    f.write_lanes(c * V);
  }
  for (index_t i = steps * V + first; i < n; i += stride) {
    f(i);
  }
}

/// The grid-stride loop over N-d indices without a division per element: each thread unravels its
/// first position once, then adds the unravelled stride `step` digit by digit with carries (every
/// digit of step is below its extent, so one subtraction wraps it).
template <int R, class F>
__global__ void __launch_bounds__(block_size)
    for_each_index_kernel(Shape<R> shape, Shape<R> step, index_t n, F f) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) {
    return;
  }
  Shape<R> index;
  index_t rest = i;
  FG_UNROLL for (int d = R - 1; d > 0; --d) {
    index[d] = rest % shape[d];
    rest /= shape[d];
  }
  if constexpr (R > 0) {
    index[0] = rest;
  }
  for (; i < n; i += stride) {
    f(index, i);
    index_t carry = 0;
    FG_UNROLL for (int d = R - 1; d > 0; --d) {
      const index_t v = index[d] + step[d] + carry;
      carry = v >= shape[d] ? 1 : 0;
      index[d] = carry ? v - shape[d] : v;
    }
    if constexpr (R > 0) {
      index[0] += step[0] + carry;
    }
  }
}

/// `stride` unravelled over `shape` (the leading digit unbounded).
template <int R>
Shape<R> unravel_step(const Shape<R>& shape, index_t stride) {
  Shape<R> step;
  for (int d = R - 1; d > 0; --d) {
    step[d] = stride % shape[d];
    stride /= shape[d];
  }
  if constexpr (R > 0) {
    step[0] = stride;
  }
  return step;
}

}  // namespace detail

/// f(i) for i in [0, n): one kernel. A functor with `lanes` and `write_lanes` (eval/plan.hpp) takes
/// the vectorised kernel when its pointers are aligned to a whole step.
template <class F>
void for_each_linear(index_t n, const F& f) {
  if (n <= 0) {
    return;
  }
  detail::report_pending();
  stats::count_kernel();
  if constexpr (requires { F::lanes; f.write_lanes(index_t(0)); }) {
    const index_t steps = f.lanes_aligned() ? n / F::lanes : 0;
    const int grid = detail::grid_for(steps > 0 ? steps : n);
    detail::for_each_lanes_kernel<F::lanes><<<grid, detail::block_size, 0, cuda_stream()>>>(n, steps, f);
    FG_CUDA_CHECK(cudaGetLastError());
    return;
  } else {
    detail::for_each_linear_kernel<<<detail::grid_for(n), detail::block_size, 0, cuda_stream()>>>(n, f);
    FG_CUDA_CHECK(cudaGetLastError());
  }
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
  const int grid = detail::grid_for(n);
  const Shape<R> step = detail::unravel_step(shape, static_cast<index_t>(grid) * detail::block_size);
  detail::for_each_index_kernel<R><<<grid, detail::block_size, 0, cuda_stream()>>>(shape, step, n, f);
  FG_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
