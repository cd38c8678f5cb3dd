// fusegrad/memory/buffer.hpp — Buffer<T>: an owning, move-only block of device memory, and
// BufferWatch: what tells a captured CUDA graph that memory it may use was freed.
//
// Buffers are numbered in allocation order. A watch started when buffer number g was the last
// allocated learns when any buffer numbered g or less is freed: memory that existed when a graph
// was captured, which the graph may read or write at every replay (parameters, optimizer state, a
// running sum). Buffers allocated later (a step's own temporaries) do not concern it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fusegrad/backend/runtime.hpp"
#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

class BufferWatch;

namespace detail {

/// The allocation counter and the live watches (see the file comment).
class BufferWatches {
 public:
  std::uint64_t next() { return counter_.fetch_add(1, std::memory_order_relaxed) + 1; }
  std::uint64_t last() const { return counter_.load(std::memory_order_relaxed); }
  /// Buffer `id` was freed: every watch that started at or after it turns stale.
  void freed(std::uint64_t id) noexcept;
  void add(BufferWatch* w) {
    std::lock_guard<std::mutex> lock(mutex_);
    watches_.push_back(w);
    active_.store(watches_.size(), std::memory_order_relaxed);
  }
  void remove(BufferWatch* w) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    watches_.erase(std::remove(watches_.begin(), watches_.end(), w), watches_.end());
    active_.store(watches_.size(), std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> counter_{0};
  std::atomic<std::size_t> active_{0};
  std::mutex mutex_;
  std::vector<BufferWatch*> watches_;
};

/// Never destroyed: buffers freed during static destruction still find it.
inline BufferWatches& buffer_watches() {
  static BufferWatches* const w = new BufferWatches;
  return *w;
}

}  // namespace detail

/// Turns stale when a buffer that existed at its last restart() is freed (compile_step re-captures
/// its graph then, rather than replay into freed memory). Not copyable; registered while it lives.
/// Example: `BufferWatch w; w.restart(); W1 = fg::zeros<float>({3}); assert(w.stale());`
class BufferWatch {
 public:
  BufferWatch() : since_(detail::buffer_watches().last()) { detail::buffer_watches().add(this); }
  ~BufferWatch() { detail::buffer_watches().remove(this); }
  BufferWatch(const BufferWatch&) = delete;
  BufferWatch& operator=(const BufferWatch&) = delete;

  /// Watches every buffer allocated so far, from now on.
  void restart() {
    since_ = detail::buffer_watches().last();
    stale_.store(false, std::memory_order_relaxed);
  }
  /// True when one of them was freed since the last restart().
  bool stale() const { return stale_.load(std::memory_order_relaxed); }

 private:
  friend class detail::BufferWatches;
  std::uint64_t since_;
  std::atomic<bool> stale_{false};
};

inline void detail::BufferWatches::freed(std::uint64_t id) noexcept {
  if (active_.load(std::memory_order_relaxed) == 0) {
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (BufferWatch* w : watches_) {
    if (id <= w->since_) {
      w->stale_.store(true, std::memory_order_relaxed);
    }
  }
}

/// `count` elements of T in device memory (the GPU on CUDA, host memory on the host backend).
/// Contents start unspecified.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(index_t count) : count_(count) {
    if (count < 0 || static_cast<std::size_t>(count) > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
      throw memory_error("allocate: cannot hold " + std::to_string(count) + " elements of " +
                         std::to_string(sizeof(T)) + " bytes each");
    }
    data_ = static_cast<T*>(backend::allocate(bytes()));
    stats::count_bytes(static_cast<std::int64_t>(bytes()));
    if (data_ != nullptr) {
      id_ = detail::buffer_watches().next();
    }
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)),
        id_(std::exchange(other.id_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
      id_ = std::exchange(other.id_, 0);
    }
    return *this;
  }
  ~Buffer() { release(); }

  T* data() const { return data_; }
  index_t size() const { return count_; }
  std::size_t bytes() const { return static_cast<std::size_t>(count_) * sizeof(T); }

 private:
  void release() noexcept {
    if (data_ != nullptr) {
      stats::count_bytes(-static_cast<std::int64_t>(bytes()));
      detail::buffer_watches().freed(id_);
    }
    backend::deallocate(data_, bytes());
    data_ = nullptr;
    count_ = 0;
    id_ = 0;
  }
  T* data_ = nullptr;
  index_t count_ = 0;
  std::uint64_t id_ = 0;  // allocation number (0: nothing allocated)
};

}  // namespace fusegrad::inline FG_BACKEND_NS
