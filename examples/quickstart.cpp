// The README's example: build lazy expressions, evaluate them in fused kernels, read results.
#include <fusegrad/fusegrad.hpp>

#include <iostream>

namespace fg = fusegrad;

int main() {
  fg::Tensor<float, 2> a = fg::random::uniform<float>({4096, 1024}, -1.f, 1.f, /*seed*/ 1);
  fg::Tensor<float, 1> b = fg::random::normal<float>({1024}, 0.f, 1.f, 2);

  const auto k0 = fg::stats::kernel_launches();
  fg::Tensor<float, 2> c = fg::relu(a * 2.f + b) - fg::exp(-fg::square(a));  // one fused kernel
  float s = fg::sum(fg::square(a - c)).item();                                // one fused map-reduce
  fg::Tensor<float, 1> m = fg::max(a, /*axis*/ 0);                            // one kernel
  fg::Tensor<float, 2> p = fg::matmul(a, fg::transpose(c));                   // one GEMM, no copy
  std::vector<float> host = c.to_vector();

  std::cout << "sum((a - c)^2) = " << s << "\n"
            << "max over axis 0: " << m.shape()[0] << " values, first " << m.to_vector()[0] << "\n"
            << "a @ c^T: " << fg::to_string(p.shape()) << ", c[0, 0] = " << host[0] << "\n"
            << "kernels launched: " << fg::stats::kernel_launches() - k0
            << " (GEMMs: " << fg::stats::gemm_calls() << ")\n"
            << fg::slice(fg::slice(c, 0, 0, 2), 1, 0, 4) << "\n";
}
