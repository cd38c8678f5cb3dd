// fusegrad/data/cuda_resources.hpp — RAII owners of the CUDA resources the batch loader uses:
// pinned (page-locked) host memory, a non-blocking stream, an event. Move-only; every call is
// checked with FG_CUDA_CHECK, destructors never throw. Empty on the host backend.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "fusegrad/backend/runtime.hpp"

#if defined(FG_BACKEND_CUDA)
namespace fusegrad::inline FG_BACKEND_NS::data::detail {

/// `count` elements of T in pinned host memory (cudaHostAlloc), so cudaMemcpyAsync from it is a
/// true asynchronous DMA.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(index_t count) : count_(count) {
    if (count > 0) {
      void* p = nullptr;
      FG_CUDA_CHECK(cudaHostAlloc(&p, bytes(), cudaHostAllocDefault));
      data_ = static_cast<T*>(p);
    }
  }
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  ~PinnedBuffer() {
    if (data_ != nullptr) {
      (void)cudaFreeHost(data_);
    }
  }

  T* data() const { return data_; }
  std::size_t bytes() const { return static_cast<std::size_t>(count_) * sizeof(T); }

 private:
  T* data_ = nullptr;
  index_t count_ = 0;
};

/// A stream that does not synchronise with the legacy default stream.
class Stream {
 public:
  Stream() { FG_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  Stream& operator=(Stream&& other) noexcept {
    std::swap(stream_, other.stream_);
    return *this;
  }
  ~Stream() {
    if (stream_ != nullptr) {
      (void)cudaStreamSynchronize(stream_);
      (void)cudaStreamDestroy(stream_);
    }
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

/// An event for ordering only (no timing), plus whether it has been recorded yet: waiting on an
/// event that was never recorded is a no-op in CUDA, and this makes that explicit.
class Event {
 public:
  Event() { FG_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  Event(Event&& other) noexcept
      : event_(std::exchange(other.event_, nullptr)), recorded_(std::exchange(other.recorded_, false)) {}
  Event& operator=(Event&& other) noexcept {
    std::swap(event_, other.event_);
    std::swap(recorded_, other.recorded_);
    return *this;
  }
  ~Event() {
    if (event_ != nullptr) {
      (void)cudaEventDestroy(event_);
    }
  }

  /// Marks the work queued on `stream` so far.
  void record(cudaStream_t stream) {
    FG_CUDA_CHECK(cudaEventRecord(event_, stream));
    recorded_ = true;
  }
  /// Makes later work on `stream` wait for the marked work (device side; the host does not block).
  void wait_on(cudaStream_t stream) const {
    if (recorded_) {
      FG_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0));
    }
  }
  /// Blocks the host until the marked work is done.
  void synchronize() const {
    if (recorded_) {
      FG_CUDA_CHECK(cudaEventSynchronize(event_));
    }
  }

 private:
  cudaEvent_t event_ = nullptr;
  bool recorded_ = false;
};

}  // namespace fusegrad::inline FG_BACKEND_NS::data::detail
#endif
