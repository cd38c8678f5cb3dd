// expect: matmul: operands must have rank 2 \(matrices\), 3 or 4 \(batches of matrices
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 1> v({4});
  fg::Tensor<float, 2> m({4, 4});
  auto e = fg::matmul(m, v);
}
