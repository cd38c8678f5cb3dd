// expect: transpose: needs a rank-2 \(matrix\) expression; use permute for other ranks
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 3> a({2, 3, 4});
  auto e = fg::transpose(a);
}
