// fusegrad/memory/buffer.hpp — Buffer<T>: an owning, move-only block of device memory.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <utility>

#include "fusegrad/backend/runtime.hpp"
#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

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
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
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
    }
    backend::deallocate(data_, bytes());
    data_ = nullptr;
    count_ = 0;
  }
  T* data_ = nullptr;
  index_t count_ = 0;
};

}  // namespace fusegrad::inline FG_BACKEND_NS
