// expect: the expression's rank differs from the tensor's rank
// Assigning a rank-2 expression to a rank-1 tensor is a compile-time error in plain words.
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 2> a({3, 4});
  fg::Tensor<float, 1> t = a + 1.f;
}
