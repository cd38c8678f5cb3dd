// fusegrad/backend/cuda/runtime.hpp — device memory and the library's stream on the CUDA backend.
//
// Memory comes from the stream-ordered pool (cudaMallocAsync), which caches freed blocks, so the
// temporaries of a training step do not reach the driver in steady state. Every call is checked.
//
// Errors: a failed call throws cuda_error and clears the thread's CUDA error state, so the next
// launch's check does not report it again against an unrelated kernel. The message says whether the
// error is sticky (the context is unusable: every later CUDA call fails; restart the process). A
// failure where nothing may throw (cudaFreeAsync in a destructor) is kept as the pending error and
// thrown, once and naming its call, by the next allocation, launch, GEMM, copy or synchronisation.
// A bad index met by a kernel (an embedding id outside the table) is kept in a pinned slot the
// device writes through and thrown as `error` by the next synchronisation (DeviceFault).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "fusegrad/backend/info.hpp"
#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"

namespace fusegrad::inline FG_BACKEND_NS {
namespace backend::detail {

/// The errors CUDA documents as corrupting the context ("any further CUDA work will return the
/// same error; the process must be terminated"). Newer codes of that kind are caught at run time:
/// their error state survives cudaGetLastError.
inline bool known_sticky(cudaError_t status) {
  switch (status) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
      return true;
    default:
      return false;
  }
}

/// Clears the thread's error state, which the call that returned `status` just set (so the next
/// launch's check does not report it again), and tells whether the error is sticky: a known code,
/// or one whose error state survives the clearing.
inline bool clear_error(cudaError_t status) noexcept {
  (void)cudaGetLastError();
  return known_sticky(status) || cudaPeekAtLastError() != cudaSuccess;
}

/// "cudaErrorX (text); not sticky: ..." or "...; sticky: the CUDA context is unusable, ...". A
/// sticky error is raised by the first call after the faulty kernel ran, not by that kernel's own
/// launch, hence the hint.
inline std::string describe_error(cudaError_t status, bool sticky) {
  return std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + "); " +
         (sticky ? "sticky: the CUDA context is unusable and every later CUDA call fails; restart "
                   "the process (the fault may be in any earlier kernel: CUDA_LAUNCH_BLOCKING=1 "
                   "reports it at its own launch)"
                 : "not sticky: cleared, later CUDA calls are unaffected");
}

/// The first failure of a call that could not throw (a destructor's cudaFreeAsync), kept until the
/// next checked entry point reports it; later failures while one is pending are only counted.
struct PendingFailure {
  std::atomic<int> state{0};  // 0 none, 1 being written, 2 pending, 3 being reported
  std::atomic<unsigned> more{0};
  const char* call = nullptr;
  cudaError_t status = cudaSuccess;
  bool sticky = false;
  const void* pointer = nullptr;
};
inline PendingFailure& pending_failure() {
  static PendingFailure pending;
  return pending;
}

/// Records a failed `call` on `pointer` where nothing may throw (a destructor), and clears the
/// error state so that the next launch is not blamed for it.
inline void record_failure(const char* call, cudaError_t status, const void* pointer) noexcept {
  const bool sticky = clear_error(status);
  PendingFailure& pending = pending_failure();
  int none = 0;
  if (pending.state.compare_exchange_strong(none, 1, std::memory_order_acquire)) {
    pending.call = call;
    pending.status = status;
    pending.sticky = sticky;
    pending.pointer = pointer;
    pending.state.store(2, std::memory_order_release);
  } else {
    pending.more.fetch_add(1, std::memory_order_relaxed);
  }
}

/// Throws the recorded failure, if there is one, as cuda_error naming its call, once (it is then
/// forgotten). Called before the backend issues new work: allocations, launches, GEMMs, copies,
/// synchronisations.
inline void report_pending() {
  PendingFailure& pending = pending_failure();
  if (pending.state.load(std::memory_order_relaxed) != 2) {
    return;
  }
  int ready = 2;
  if (!pending.state.compare_exchange_strong(ready, 3, std::memory_order_acquire)) {
    return;  // another thread reports it
  }
  const std::string call = pending.call;
  const cudaError_t status = pending.status;
  const bool sticky = pending.sticky;
  char pointer[32];
  std::snprintf(pointer, sizeof pointer, "%p", pending.pointer);
  const unsigned more = pending.more.exchange(0, std::memory_order_relaxed);
  pending.state.store(0, std::memory_order_release);
  throw cuda_error(call + "(" + pointer +
                   ") failed earlier, where it could not throw: " + describe_error(status, sticky) +
                   (more ? " (and " + std::to_string(more) + " more such failures)" : ""));
}

/// A bad index that a kernel met (an embedding id outside its table). Device code cannot throw, so
/// the first such fault is written here, in pinned host memory the device writes through, and the
/// next synchronisation (a copy to the host, synchronize()) throws it as `error`; later faults of
/// the same run are dropped. `op` and `noun` are host string literals that travel to the kernel
/// inside its node and back here unchanged.
struct DeviceFault {
  unsigned int state;  // 0 none, 1 being written, 2 written
  const char* op;
  const char* noun;
  long long value;
  long long position;
  long long limit;
};

/// Where kernels report faults: allocated on first use (by the first node that may fault), so a
/// program that never builds one pays nothing.
inline DeviceFault*& device_fault_host() {
  static DeviceFault* slot = nullptr;
  return slot;
}
inline DeviceFault* device_fault_slot();

#if defined(__CUDACC__)
/// Device side: records the fault unless one is already recorded.
__device__ inline void report_fault(DeviceFault* f, const char* op, const char* noun, long long value,
                                    long long position, long long limit) {
  if (f != nullptr && atomicCAS(&f->state, 0u, 1u) == 0u) {
    f->op = op;
    f->noun = noun;
    f->value = value;
    f->position = position;
    f->limit = limit;
    __threadfence_system();
    atomicExch(&f->state, 2u);
  }
}
#endif

/// Throws the fault a kernel recorded, once; called after every synchronisation.
inline void report_device_fault() {
  DeviceFault* f = device_fault_host();
  if (f == nullptr || __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != 2u) {
    return;
  }
  const std::string message = std::string(f->op) + ": id " + std::to_string(f->value) + " at position " +
                              std::to_string(f->position) + " (C order) is outside the " +
                              std::to_string(f->limit) + " " + f->noun +
                              " (found by a kernel on the device, reported at the next synchronisation; "
                              "the result it was computing holds NaN there)";
  __atomic_store_n(&f->state, 0u, __ATOMIC_RELEASE);
  throw error(message);
}

}  // namespace backend::detail

/// Throws cuda_error for a failed CUDA call (FG_CUDA_CHECK), after clearing the error state, and
/// says whether the error is sticky; not for users.
inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    const bool sticky = backend::detail::clear_error(status);
    throw cuda_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                     backend::detail::describe_error(status, sticky));
  }
}

/// The stream every fusegrad kernel, copy and GEMM is issued on (created on first use; it
/// synchronises with the legacy default stream, so user kernels on stream 0 see our results).
inline cudaStream_t cuda_stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    FG_CUDA_CHECK(cudaStreamCreate(&s));
    return s;
  }();
  return stream;
}

namespace backend::detail {
/// The device's address of the fault slot (pinned, mapped host memory), allocated once.
inline DeviceFault* device_fault_slot() {
  static DeviceFault* const device = [] {
    void* host = nullptr;
    FG_CUDA_CHECK(cudaHostAlloc(&host, sizeof(DeviceFault), cudaHostAllocMapped));
    std::memset(host, 0, sizeof(DeviceFault));
    void* mapped = nullptr;
    FG_CUDA_CHECK(cudaHostGetDevicePointer(&mapped, host, 0));
    device_fault_host() = static_cast<DeviceFault*>(host);
    return static_cast<DeviceFault*>(mapped);
  }();
  return device;
}
}  // namespace backend::detail

namespace backend {

inline constexpr std::size_t alignment = 256;

namespace detail {

/// Keeps freed memory in the current device's default pool (the one cudaMallocAsync draws from
/// unless the program installed its own with cudaDeviceSetMemPool): its release threshold is 0 by
/// default, which hands every cached block back to the driver at each synchronisation, so an eager
/// step would pay driver calls for every temporary again. Set once, on first allocation. The pool
/// then only grows; cudaMemPoolTrimTo(pool, 0) after a synchronisation gives the memory back.
inline void keep_pool_memory() {
  static const bool kept = [] {
    int device = 0;
    FG_CUDA_CHECK(cudaGetDevice(&device));
    cudaMemPool_t pool = nullptr;
    FG_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    std::uint64_t threshold = UINT64_MAX;
    FG_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    return true;
  }();
  (void)kept;
}

}  // namespace detail

/// Allocates `bytes` of device memory; out of memory throws memory_error with the bytes asked and
/// the bytes free.
inline void* allocate(std::size_t bytes) {
  detail::report_pending();
  if (bytes == 0) {
    return nullptr;
  }
  detail::keep_pool_memory();
  void* p = nullptr;
  const cudaError_t status = cudaMallocAsync(&p, bytes, cuda_stream());
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // not sticky: the program may free memory and go on
    std::size_t free_bytes = 0, total_bytes = 0;
    const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
    (void)cudaGetLastError();  // the message's own query must not fail the next launch
    throw memory_error(
        "cudaMallocAsync: out of device memory asking for " + std::to_string(bytes) + " bytes (" +
        (known ? std::to_string(free_bytes) + " bytes free of " + std::to_string(total_bytes)
               : std::string("free memory unknown")) +
        ")");
  }
  FG_CUDA_CHECK(status);
  return p;
}

/// Frees p (stream-ordered). Called from destructors, so it cannot throw: a failure is recorded
/// and thrown by the next allocation, launch, GEMM, copy or synchronisation (report_pending).
inline void deallocate(void* p, std::size_t /*bytes*/) noexcept {
  if (p != nullptr) {
    const cudaError_t status = cudaFreeAsync(p, cuda_stream());
    if (status != cudaSuccess) {
      detail::record_failure("cudaFreeAsync", status, p);
    }
  }
}

inline void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  detail::report_pending();
  if (bytes) {
    FG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream()));
    FG_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));  // `src` may be a temporary
    detail::report_device_fault();
  }
}
inline void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  detail::report_pending();
  if (bytes) {
    FG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream()));
    FG_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    detail::report_device_fault();
  }
}
inline void copy_on_device(void* dst, const void* src, std::size_t bytes) {
  detail::report_pending();
  if (bytes) {
    FG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
  }
}

inline void synchronize() {
  detail::report_pending();
  FG_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  detail::report_device_fault();
}

/// What "device" means here, for logs: "NVIDIA H100 80GB HBM3 (CUDA backend, sm_90, 132 SMs)".
inline std::string describe() {
  int device = 0;
  FG_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp p{};
  FG_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return std::string(p.name) + " (CUDA backend, sm_" + std::to_string(p.major * 10 + p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs)";
}

/// The CUDA backend: the GPU, and cuBLAS for matrix products.
inline BackendInfo info() {
  int device = 0;
  FG_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp p{};
  FG_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  BackendInfo i;
  i.device = p.name;
  i.gemm = "cuBLAS";
  i.gemm_kernel = "cuBLAS (sm_" + std::to_string(p.major * 10 + p.minor) + ")";
  return i;
}

}  // namespace backend
}  // namespace fusegrad::inline FG_BACKEND_NS
