// fusegrad/fusegrad.hpp — the whole library. `#include <fusegrad/fusegrad.hpp>`.
#pragma once

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/dtype.hpp"
#include "fusegrad/core/error.hpp"
#include "fusegrad/core/shape.hpp"
#include "fusegrad/eval/assign.hpp"
#include "fusegrad/eval/factory.hpp"
#include "fusegrad/eval/print.hpp"
#include "fusegrad/eval/stats.hpp"
#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/matmul.hpp"
#include "fusegrad/expr/reduce.hpp"
#include "fusegrad/expr/view.hpp"
#include "fusegrad/memory/tensor.hpp"
