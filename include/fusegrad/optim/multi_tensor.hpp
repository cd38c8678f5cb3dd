// fusegrad/optim/multi_tensor.hpp — multi-tensor apply: one kernel runs an element-wise update
// rule over every parameter of an optimizer (the concatenated index space of all tensors).
//
// The kernel receives, by value, a table of up to `table_capacity` tensors (parameter, gradient
// and S state-buffer pointers, and the running end offset of each tensor in the concatenated
// index space). More tensors are split into ceil(count / table_capacity) launches issued back to
// back on the same stream; only the last one advances the step counter.
//
// Everything that changes between steps is read from device memory by the kernel: the learning
// rate (`*lr`, double) and the step count (`*step`, int64, the number of steps taken so far; a
// launch with no step counter, step = nullptr, computes with t = 1).
// Every launch computes with t = *step + 1; the last launch of a step also writes *step = t:
//   CUDA: the last block to finish (an atomic ticket, as in backend/cuda/reduce.hpp) writes it and
//         resets the ticket, so a captured graph replays correctly;
//   host: the loop runs through backend::for_each_segmented (one "kernel"), then *step is bumped.
// No allocation, host synchronisation or host->device copy happens in a step, so it can be
// captured in a CUDA graph and replayed.
//
// A rule is a small device-copyable value with
//   using coefficients_type = ...;
//   FG_HOST_DEVICE coefficients_type coefficients(double lr, std::int64_t t) const;  // once a thread
//   FG_HOST_DEVICE void operator()(const coefficients_type&, T& p, T g, T* const (&state)[S]) const;
// where state[s] points at the element's entry in state buffer s. A rule whose call also takes
// an `int group` is told the parameter's weight-decay group (0 .. max_groups - 1, see
// optimizer.hpp): parameter groups cost one byte per tensor in the table, not a second launch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "fusegrad/backend/backend.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS::optim::detail {

/// Tensors per launch. The table then takes 8 + 8 * (3 + S) * 64 + 64 bytes (2.6 KB for Adam), well
/// inside the 4 KB kernel-parameter limit every CUDA version honours.
inline constexpr int table_capacity = 64;

/// Distinct weight decays one optimizer can apply in a step (parameter groups).
inline constexpr int max_groups = 4;

/// The tensors of one launch. end[k] = sizes of tensors 0..k summed (tensor k covers
/// [end[k-1], end[k]) of the concatenated index space).
template <class T, int S>
struct TensorTable {
  int count = 0;
  index_t end[table_capacity] = {};
  T* param[table_capacity] = {};
  const T* grad[table_capacity] = {};
  T* state[S > 0 ? S : 1][table_capacity] = {};
  unsigned char group[table_capacity] = {};  // weight-decay group of each tensor

  /// The tensor holding concatenated index i (0 <= i < end[count - 1]): the first k with
  /// end[k] > i, so empty tensors are skipped.
  FG_HOST_DEVICE int find(index_t i) const {
    int lo = 0, hi = count - 1;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (end[mid] > i) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }

  /// Applies `rule` to element j of tensor k.
  template <class Rule, class C>
  FG_HOST_DEVICE void apply(const Rule& rule, const C& c, int k, index_t j) const {
    T* s[S > 0 ? S : 1];
    FG_UNROLL for (int b = 0; b < (S > 0 ? S : 1); ++b) {
      s[b] = state[b][k] == nullptr ? nullptr : state[b][k] + j;  // null: a buffer the rule skips
    }
    T& p = param[k][j];
    if constexpr (requires { rule(c, p, grad[k][j], s, 0); }) {
      rule(c, p, grad[k][j], s, static_cast<int>(group[k]));
    } else {
      rule(c, p, grad[k][j], s);
    }
  }
};

/// One launch: a table, the rule, and where the changing scalars live on the device.
template <class T, int S, class Rule>
struct MultiTensorLaunch {
  TensorTable<T, S> table;
  Rule rule;
  index_t total = 0;                // elements in the table, end[count - 1]
  const double* lr = nullptr;       // device
  std::int64_t* step = nullptr;     // device; steps taken so far
  unsigned int* ticket = nullptr;   // device, CUDA only; zero between launches
  bool advance = false;             // this launch writes *step + 1
};

/// Host backend: element j of tensor k, for backend::for_each_segmented (no search per element).
template <class T, int S, class Rule>
struct HostBody {
  TensorTable<T, S> table;
  Rule rule;
  typename Rule::coefficients_type c;
  void operator()(int k, index_t j) const { table.apply(rule, c, k, j); }
};

#if defined(FG_BACKEND_CUDA)
inline constexpr int multi_tensor_block = 256;

template <class T, int S, class Rule>
__global__ void __launch_bounds__(multi_tensor_block)
    multi_tensor_kernel(const __grid_constant__ MultiTensorLaunch<T, S, Rule> launch) {
  const auto& table = launch.table;
  const auto c = launch.rule.coefficients(*launch.lr, launch.step != nullptr ? *launch.step + 1 : 1);
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < launch.total) {
    int k = table.find(i);  // then walk forward: i only grows
    for (; i < launch.total; i += stride) {
      while (i >= table.end[k]) {
        ++k;
      }
      table.apply(launch.rule, c, k, i - (k > 0 ? table.end[k - 1] : 0));
    }
  }
  if (!launch.advance) {
    return;
  }
  // The last block to finish writes the new step count: every block has read *step by the time
  // it takes its ticket.
  __shared__ bool last;
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(launch.ticket, 1u) == gridDim.x - 1;
    if (last) {
      *launch.step += 1;
      *launch.ticket = 0;
    }
  }
}
#endif

/// Issues one launch on fusegrad::cuda_stream() (CUDA) or runs it (host); counts one kernel.
template <class T, int S, class Rule>
void run(const MultiTensorLaunch<T, S, Rule>& launch) {
#if defined(FG_BACKEND_CUDA)
  const int grid = std::max(1, backend::detail::grid_for(launch.total, multi_tensor_block));
  stats::count_kernel();
  multi_tensor_kernel<T, S, Rule><<<grid, multi_tensor_block, 0, cuda_stream()>>>(launch);
  FG_CUDA_CHECK(cudaGetLastError());
#else
  // "Device" memory is host memory here, and the host backend runs synchronously.
  const HostBody<T, S, Rule> body{
      launch.table, launch.rule,
      launch.rule.coefficients(*launch.lr, launch.step != nullptr ? *launch.step + 1 : 1)};
  backend::for_each_segmented(launch.table.count, launch.table.end, body);  // one launch, as on CUDA
  if (launch.advance) {
    *launch.step += 1;
  }
#endif
}

/// Math in the parameter's type, the same on host and device.
template <class T>
FG_HOST_DEVICE T sqrt_of(T x) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) {
    return ::sqrtf(x);
  } else {
    return ::sqrt(x);
  }
#else
  return std::sqrt(x);
#endif
}
FG_HOST_DEVICE double pow_of(double x, double y) {
#if defined(__CUDA_ARCH__)
  return ::pow(x, y);
#else
  return std::pow(x, y);
#endif
}

}  // namespace fusegrad::inline FG_BACKEND_NS::optim::detail
