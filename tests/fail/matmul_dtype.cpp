// expect: matmul: both operands must have the same dtype
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 2> a({4, 4});
  fg::Tensor<double, 2> b({4, 4});
  auto e = fg::matmul(a, b);
}
