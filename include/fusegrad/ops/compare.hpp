// fusegrad/ops/compare.hpp — comparison op functors; each yields bool.
#pragma once

#include "fusegrad/core/config.hpp"

namespace fusegrad::ops {

struct less {
  static constexpr const char* name = "less";
  template <class A, class B>
  FG_HOST_DEVICE bool operator()(A a, B b) const {
    return a < b;
  }
};
struct less_equal {
  static constexpr const char* name = "less_equal";
  template <class A, class B>
  FG_HOST_DEVICE bool operator()(A a, B b) const {
    return a <= b;
  }
};
struct greater {
  static constexpr const char* name = "greater";
  template <class A, class B>
  FG_HOST_DEVICE bool operator()(A a, B b) const {
    return a > b;
  }
};
struct greater_equal {
  static constexpr const char* name = "greater_equal";
  template <class A, class B>
  FG_HOST_DEVICE bool operator()(A a, B b) const {
    return a >= b;
  }
};
struct equal {
  static constexpr const char* name = "equal";
  template <class A, class B>
  FG_HOST_DEVICE bool operator()(A a, B b) const {
    return a == b;
  }
};
struct not_equal {
  static constexpr const char* name = "not_equal";
  template <class A, class B>
  FG_HOST_DEVICE bool operator()(A a, B b) const {
    return a != b;
  }
};

}  // namespace fusegrad::ops
