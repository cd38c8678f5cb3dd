// fusegrad/backend/cuda/graph.hpp — Graph: the work a function issues on fusegrad::cuda_stream(),
// captured once as a CUDA graph and replayed with one launch.
//
// Capture records kernels, GEMMs, copies and stream-ordered allocations (cudaMallocAsync /
// cudaFreeAsync become graph memory nodes) without running them. What the captured code reads on
// the host is read once, at capture; what it reads from device memory is read at every replay.
#pragma once

#include <utility>

#include "fusegrad/backend/cuda/runtime.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

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
    const cudaStream_t stream = cuda_stream();
    FG_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
      f();
    } catch (...) {
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
    (void)cudaGraphDestroy(graph);
    FG_CUDA_CHECK(status);
  }

  /// Replays the captured work on cuda_stream(): one launch.
  void launch() const { FG_CUDA_CHECK(cudaGraphLaunch(exec_, cuda_stream())); }

 private:
  void reset() noexcept {
    if (exec_ != nullptr) {
      (void)cudaGraphExecDestroy(exec_);
      exec_ = nullptr;
    }
  }
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
