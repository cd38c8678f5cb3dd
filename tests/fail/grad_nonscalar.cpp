// expect: grad: the loss must be a scalar \(rank-0\) expression
// grad of a tensor-valued expression is a compile-time error that says what to do.
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 2> a({3, 4});
  auto [g] = fg::grad(a * 2.f, a);
}
