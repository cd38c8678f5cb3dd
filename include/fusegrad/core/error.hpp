// fusegrad/core/error.hpp — the one family of exceptions the host API throws.
//
// Device code never throws; the host checks every CUDA call and every shape before launching.
#pragma once

#include <stdexcept>
#include <string>

#include "fusegrad/core/config.hpp"

namespace fusegrad {

/// Base of every exception fusegrad throws.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A shape, rank-at-run-time, axis or index rule was broken; thrown before any kernel runs.
/// Example text: `add: shapes [3, 4] and [5, 4] do not broadcast`.
struct shape_error : error {
  using error::error;
};

/// A CUDA runtime or cuBLAS call failed; names the call, the file and the line.
struct cuda_error : error {
  using error::error;
};

/// An allocation did not fit; says how many bytes were asked (and, on CUDA, how many are free).
struct memory_error : error {
  using error::error;
};

/// Reports a broken internal invariant (FG_ASSERT); not for users.
[[noreturn]] inline void assertion_failed(const char* cond, const char* file, int line) {
  throw error(std::string("fusegrad internal assertion failed: ") + cond + " at " + file + ":" +
              std::to_string(line));
}

}  // namespace fusegrad
