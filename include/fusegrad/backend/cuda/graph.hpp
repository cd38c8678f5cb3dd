// fusegrad/backend/cuda/graph.hpp — Graph: the work a function issues on fusegrad::cuda_stream(),
// captured once as a CUDA graph and replayed with one launch.
//
// Capture records kernels, GEMMs, copies and stream-ordered allocations (cudaMallocAsync /
// cudaFreeAsync become graph memory nodes) without running them. What the captured code reads on
// the host is read once, at capture; what it reads from device memory is read at every replay.
// What the backend creates on first use (cuBLAS's handle and workspace, the reduction ticket, the
// pool's setting) is created before a capture begins: cudaMalloc and cublasCreate cannot be
// captured.
#pragma once

#include <cstdint>
#include <utility>

#include "fusegrad/backend/cuda/gemm.hpp"
#include "fusegrad/backend/cuda/launch.hpp"
#include "fusegrad/backend/cuda/reduce.hpp"
#include "fusegrad/backend/cuda/runtime.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {

/// Creates everything the backend makes lazily and a stream capture cannot hold, and reports a
/// pending failure; Graph::capture calls it before the capture begins.
inline void prepare_for_capture() {
  report_pending();
  keep_pool_memory();
  (void)grid_for(1);
  (void)reduce_ticket();
  (void)cublas_handle();
}

}  // namespace detail

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&& other) noexcept : exec_(std::exchange(other.exec_, nullptr)) {}
  Graph& operator=(Graph&& other) noexcept {
    if (this != &other) {
      reset();
      exec_ = std::exchange(other.exec_, nullptr);
    }
    return *this;
  }
  ~Graph() { reset(); }

  explicit operator bool() const { return exec_ != nullptr; }

  /// Records what f() issues on cuda_stream() (nothing runs) and instantiates it. Throws
  /// cuda_error, with the capture ended and nothing kept, when f does something a capture cannot
  /// hold (a synchronisation, a blocking copy).
  template <class F>
  void capture(F&& f) {
    reset();
    detail::prepare_for_capture();
    const cudaStream_t stream = cuda_stream();
    FG_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    // What f launches is recorded, not run: counted at each replay instead (eval/stats.hpp).
    const auto k0 = stats::kernel_launches(), g0 = stats::gemm_calls();
    std::int64_t kernels = 0, gemms = 0;
    const auto uncount = [&] {
      kernels = stats::kernel_launches() - k0;
      gemms = stats::gemm_calls() - g0;
      stats::uncount_capture(kernels, gemms);
    };
    try {
      f();
      uncount();
    } catch (...) {
      uncount();
      (void)cudaStreamEndCapture(stream, &graph);
      if (graph != nullptr) {
        (void)cudaGraphDestroy(graph);
      }
      (void)cudaGetLastError();
      throw;
    }
    FG_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    const cudaError_t status =
        cudaGraphInstantiateWithFlags(&exec_, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch);
    const cudaError_t destroyed = cudaGraphDestroy(graph);
    if (destroyed != cudaSuccess) {
      detail::record_failure("cudaGraphDestroy", destroyed, graph);  // reported at the next call
    }
    if (status != cudaSuccess) {
      exec_ = nullptr;  // unspecified after a failed instantiation; reset() must not destroy it
    }
    FG_CUDA_CHECK(status);
    kernels_ = kernels;
    gemms_ = gemms;
  }

  /// Replays the captured work on cuda_stream(): one launch.
  void launch() const {
    detail::report_pending();
    FG_CUDA_CHECK(cudaGraphLaunch(exec_, cuda_stream()));
    stats::count_graph(kernels_, gemms_);
  }

  /// Kernels (GEMMs included) and GEMMs one replay runs.
  std::int64_t kernels() const { return kernels_; }
  std::int64_t gemms() const { return gemms_; }

 private:
  void reset() noexcept {
    if (exec_ != nullptr) {
      const cudaError_t status = cudaGraphExecDestroy(exec_);
      if (status != cudaSuccess) {
        detail::record_failure("cudaGraphExecDestroy", status, exec_);  // reported at the next call
      }
      exec_ = nullptr;
    }
  }
  cudaGraphExec_t exec_ = nullptr;
  std::int64_t kernels_ = 0, gemms_ = 0;
};

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
