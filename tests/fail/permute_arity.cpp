// expect: permute: the permutation must list every axis of the operand exactly once
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 3> a({2, 3, 4});
  auto e = fg::permute(a, {1, 0});
}
