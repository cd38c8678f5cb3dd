// fusegrad/backend/backend.hpp — includes the backend this translation unit is compiled for.
#pragma once

#include "fusegrad/core/config.hpp"

#if defined(FG_BACKEND_CUDA)
#include "fusegrad/backend/cuda/gemm.hpp"
#include "fusegrad/backend/cuda/launch.hpp"
#include "fusegrad/backend/cuda/reduce.hpp"
#else
#include "fusegrad/backend/host/gemm.hpp"
#include "fusegrad/backend/host/info.hpp"
#include "fusegrad/backend/host/launch.hpp"
#include "fusegrad/backend/host/reduce.hpp"
#endif
