// fusegrad/backend/info.hpp — what a backend reports about itself (backend::info()).
#pragma once

#include <string>

#include "fusegrad/core/config.hpp"

namespace fusegrad {

/// What the backend of this translation unit runs on; `fg::backend::info()` fills it.
struct BackendInfo {
  std::string device;       ///< "AMD EPYC 9R14", "NVIDIA H100 80GB HBM3"
  int threads = 1;          ///< host threads running kernels (the calling thread included)
  std::string gemm;         ///< the matrix-product provider, with its version
  std::string gemm_kernel;  ///< the kernel family it chose ("Haswell", "SkylakeX", "cuBLAS")
  std::string warning;      ///< empty, or why products may run far below the device's speed
};

}  // namespace fusegrad
