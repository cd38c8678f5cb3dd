// fusegrad/backend/host/thread_pool.hpp — the host backend's threads: a small pool of our own.
//
// Why not `#pragma omp parallel`: libgomp's idle threads spin at every barrier and between
// regions, and a parallel region waits for its slowest thread. When another process shares the
// cores (a compiler, a second job, a CI neighbour), a training step of many short loops spends its
// time waiting for a partner the scheduler has parked: mnist_mlp ran 11.7x slower with one
// competing process on 2 cores (bench/RESULTS.md, "contention").
//
// Here a job is cut into more chunks than threads and the chunks are claimed one at a time, the
// calling thread included: a worker that wakes late finds nothing left and costs nothing, and the
// caller only ever waits for chunks already in progress. Idle workers spin briefly, then yield the
// core between checks (spin_until), then sleep on a futex (std::atomic::wait).
//
// Which thread runs which chunk never changes a result: every kernel writes each output from one
// chunk, and reductions combine fixed-size pieces in a fixed order (reduce.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fusegrad::inline FG_BACKEND_NS::backend {

namespace detail {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// Waits for pred() without sleeping, for at most `budget`; returns pred()'s last value. Spinning
/// keeps consecutive kernels of a step microseconds apart on an idle machine; on a busy one a
/// spinning thread holds a core that the thread doing the work (often this pool's own caller)
/// needs. So the wait spins (pause) for `hot`, then yields the core between checks: with nothing
/// else runnable a yield returns at once, with a competing process it runs that process instead.
/// `hot` is measured (bench/RESULTS.md Run 5, mnist_mlp on 2 cores): 20 us lost 8% of the idle
/// speed, 1 ms lost 25% beside one competing process; 200 us sits between.
template <class Pred>
bool spin_until(const Pred& pred, std::chrono::nanoseconds budget) {
  using clock = std::chrono::steady_clock;
  constexpr std::chrono::nanoseconds hot = std::chrono::microseconds(200);
  const auto start = clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) {
        return true;
      }
      cpu_relax();
    }
    const auto waited = clock::now() - start;
    if (waited > budget) {
      return pred();
    }
    if (waited > hot) {
      std::this_thread::yield();
    }
  }
}

/// The thread count a program starts with: FG_NUM_THREADS, else OpenMP's (OMP_NUM_THREADS, the
/// CPUs this process may run on), else every hardware thread.
inline int default_thread_count() {
  if (const char* env = std::getenv("FG_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) {
      return n;
    }
  }
#if defined(_OPENMP)
  return std::max(1, omp_get_max_threads());
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

/// threads - 1 workers plus the calling thread. One job at a time: a second caller (another user
/// thread, or a chunk that launches a kernel) runs its job inline on its own thread.
class ThreadPool {
 public:
  /// Runs one chunk: chunk(body, c).
  using ChunkFn = void (*)(const void* body, index_t chunk);

  /// How long an idle worker spins for the next job before it sleeps (consecutive kernels of a
  /// step follow within microseconds; libgomp spins for about as long), and how long a caller
  /// spins for the chunks still running on other threads. Both end early on a busy machine
  /// (spin_until).
  static constexpr std::chrono::microseconds worker_spin{1000};
  static constexpr std::chrono::microseconds caller_spin{1000};

  explicit ThreadPool(int threads) {
    workers_.reserve(static_cast<std::size_t>(std::max(0, threads - 1)));
    for (int t = 1; t < threads; ++t) {
      workers_.emplace_back([this] { work(); });
    }
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    epoch_.fetch_add(1, std::memory_order_release);
    epoch_.notify_all();
    for (auto& w : workers_) {
      w.join();
    }
  }

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  /// chunk(body, c) for every c in [0, chunks), spread over the pool; returns when all are done.
  /// @pre chunks < 2^32
  void run(index_t chunks, ChunkFn chunk, const void* body) {
    if (chunks <= 0) {
      return;
    }
    if (workers_.empty() || chunks == 1 || busy_.exchange(true, std::memory_order_acquire)) {
      for (index_t c = 0; c < chunks; ++c) {
        chunk(body, c);
      }
      return;
    }
    struct Release {  // the pool is free again even if a chunk throws (it must not; belt and braces)
      std::atomic<bool>& busy;
      ~Release() { busy.store(false, std::memory_order_release); }
    } release{busy_};
    chunk_ = chunk;
    body_ = body;
    chunks_ = static_cast<std::uint32_t>(chunks);
    done_.store(0, std::memory_order_relaxed);
    const std::uint32_t epoch = epoch_.load(std::memory_order_relaxed) + 1;
    ticket_.store((std::uint64_t(epoch) << 32) | chunks_, std::memory_order_release);
    epoch_.store(epoch, std::memory_order_release);
    epoch_.notify_all();
    run_chunks(epoch);
    const auto all_done = [this] { return done_.load(std::memory_order_acquire) == chunks_; };
    if (!spin_until(all_done, caller_spin)) {
      for (std::uint32_t seen = done_.load(std::memory_order_acquire); seen != chunks_;
           seen = done_.load(std::memory_order_acquire)) {
        done_.wait(seen, std::memory_order_acquire);
      }
    }
  }

 private:
  /// Claims and runs chunks of job `epoch` until none is left (or a newer job replaced it).
  void run_chunks(std::uint32_t epoch) {
    std::uint64_t ticket = ticket_.load(std::memory_order_acquire);
    for (;;) {
      // ticket = (epoch << 32) | chunks not yet claimed; claiming counts down.
      if (std::uint32_t(ticket >> 32) != epoch || std::uint32_t(ticket) == 0) {
        return;
      }
      if (!ticket_.compare_exchange_weak(ticket, ticket - 1, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
        continue;
      }
      // A claimed chunk keeps its job alive (the caller waits for it), so the job's fields hold.
      chunk_(body_, index_t(std::uint32_t(ticket) - 1));
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks_) {
        done_.notify_one();
      }
      ticket = ticket_.load(std::memory_order_acquire);
    }
  }

  void work() {
    std::uint32_t seen = 0;
    for (;;) {
      const auto posted = [&] { return epoch_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(posted, worker_spin)) {
        epoch_.wait(seen, std::memory_order_acquire);
      }
      if (stop_.load(std::memory_order_acquire)) {
        return;
      }
      seen = epoch_.load(std::memory_order_acquire);
      run_chunks(seen);
    }
  }

  std::vector<std::thread> workers_;
  std::atomic<bool> busy_{false};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint32_t> epoch_{0};   // bumped for every job; idle workers wait on it
  std::atomic<std::uint64_t> ticket_{0};  // (epoch << 32) | chunks left to claim
  std::atomic<std::uint32_t> done_{0};    // chunks of the current job finished
  // The current job, written before its epoch is published.
  ChunkFn chunk_ = nullptr;
  const void* body_ = nullptr;
  std::uint32_t chunks_ = 0;
};

/// The pool every host kernel runs on. Never destroyed: its workers sleep on a futex and end
/// with the process, so a kernel run from another static's destructor still finds it.
inline std::atomic<ThreadPool*>& current_pool() {
  static std::atomic<ThreadPool*> pool{nullptr};
  return pool;
}

inline std::mutex& pool_mutex() {
  static std::mutex m;
  return m;
}

inline ThreadPool& thread_pool() {
  if (ThreadPool* p = current_pool().load(std::memory_order_acquire)) {
    return *p;
  }
  std::lock_guard lock(pool_mutex());
  if (current_pool().load(std::memory_order_relaxed) == nullptr) {
    current_pool().store(new ThreadPool(default_thread_count()), std::memory_order_release);
  }
  return *current_pool().load(std::memory_order_relaxed);
}

}  // namespace detail

/// The number of threads host kernels run on (the calling thread included).
inline int num_threads() { return detail::thread_pool().threads(); }

/// Runs host kernels on `threads` threads from now on (at least 1). Results do not depend on it.
/// @pre no kernel is running on another thread meanwhile.
inline void set_num_threads(int threads) {
  if (threads < 1) {
    throw error("set_num_threads: the thread count must be at least 1, got " + std::to_string(threads));
  }
  std::lock_guard lock(detail::pool_mutex());
  delete detail::current_pool().exchange(new detail::ThreadPool(threads), std::memory_order_acq_rel);
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
