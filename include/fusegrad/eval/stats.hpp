// fusegrad/eval/stats.hpp — process-wide counters that make fusion visible.
//
// Every kernel the library launches (on the host backend: every parallel loop) adds one to
// kernel_launches(); every matrix product adds one to gemm_calls() and one to kernel_launches().
// bytes_in_use() is the device memory held by live tensors and buffers (what a leak test watches).
//
// The counters count work issued to run: a kernel counts when it is launched, or, inside a step
// compiled into a CUDA graph (fg::compile_step), each time the graph is replayed — the kernels a
// capture records (which do not run then) are not counted at capture, and every replay adds all
// of them. So a compiled step of 12 kernels adds 12 per call on either backend, and
// graph_launches() says how many launches the host actually made for them.
#pragma once

#include <atomic>
#include <cstdint>

namespace fusegrad::stats {

namespace detail {
inline std::atomic<std::int64_t> kernel_count{0};
inline std::atomic<std::int64_t> gemm_count{0};
inline std::atomic<std::int64_t> bytes_held{0};
inline std::atomic<std::int64_t> graph_count{0};
}  // namespace detail

/// Kernels launched so far by this process (GEMMs included).
/// Example: `auto k0 = stats::kernel_launches(); c = a * b + 1.f; assert(stats::kernel_launches() - k0 == 1);`
inline std::int64_t kernel_launches() { return detail::kernel_count.load(std::memory_order_relaxed); }

/// Matrix products (GEMM or batched GEMM calls) launched so far by this process.
inline std::int64_t gemm_calls() { return detail::gemm_count.load(std::memory_order_relaxed); }

/// Replays of captured CUDA graphs so far (each one launch, however many kernels it holds); 0 on
/// the host backend, which has no graphs.
inline std::int64_t graph_launches() { return detail::graph_count.load(std::memory_order_relaxed); }

/// Bytes of device memory held by live buffers (tensors, temporaries, optimizer state) now; memory a
/// backend's pool caches for reuse after it was freed is not counted.
/// Example: `auto b0 = stats::bytes_in_use(); { auto t = fg::zeros<float>({256}); } assert(stats::bytes_in_use() == b0);`
inline std::int64_t bytes_in_use() { return detail::bytes_held.load(std::memory_order_relaxed); }

/// Sets the kernel, GEMM and graph counters to zero (bytes_in_use() keeps counting).
inline void reset() {
  detail::kernel_count.store(0, std::memory_order_relaxed);
  detail::gemm_count.store(0, std::memory_order_relaxed);
  detail::graph_count.store(0, std::memory_order_relaxed);
}

/// Records one kernel launch; called by the backends, not by users.
inline void count_kernel() { detail::kernel_count.fetch_add(1, std::memory_order_relaxed); }

/// Records `bytes` more (or, negative, fewer) bytes held by live buffers; called by Buffer.
inline void count_bytes(std::int64_t bytes) { detail::bytes_held.fetch_add(bytes, std::memory_order_relaxed); }

/// Records one replay of a captured graph holding `kernels` kernels and `gemms` GEMMs.
inline void count_graph(std::int64_t kernels, std::int64_t gemms) {
  detail::graph_count.fetch_add(1, std::memory_order_relaxed);
  detail::kernel_count.fetch_add(kernels, std::memory_order_relaxed);
  detail::gemm_count.fetch_add(gemms, std::memory_order_relaxed);
}

/// Forgets `kernels` kernels and `gemms` GEMMs counted while a graph was captured (they did not
/// run; count_graph counts them at every replay).
inline void uncount_capture(std::int64_t kernels, std::int64_t gemms) {
  detail::kernel_count.fetch_sub(kernels, std::memory_order_relaxed);
  detail::gemm_count.fetch_sub(gemms, std::memory_order_relaxed);
}

/// Records one GEMM (which is also a kernel launch).
inline void count_gemm() {
  detail::gemm_count.fetch_add(1, std::memory_order_relaxed);
  count_kernel();
}

}  // namespace fusegrad::stats
