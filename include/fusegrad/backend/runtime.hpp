// fusegrad/backend/runtime.hpp — picks the memory runtime of the backend this TU is compiled for.
#pragma once

#include "fusegrad/core/config.hpp"

#if defined(FG_BACKEND_CUDA)
#include "fusegrad/backend/cuda/runtime.hpp"
#else
#include "fusegrad/backend/host/runtime.hpp"
#endif
