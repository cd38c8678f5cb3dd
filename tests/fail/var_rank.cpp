// expect: Var assignment: the expression's rank differs from the Var's rank
// A statement whose expression has another rank than the Var it is assigned to.
#include <fusegrad/fusegrad.hpp>

int main() {
  namespace fg = fusegrad;
  fg::Tensor<float, 2> x({4, 3});
  fg::Var<float, 2> h = x * 2.f;
  fg::Var<float, 1> wrong = h + 1.f;  // rank 2 into a rank-1 Var
  (void)wrong;
}
