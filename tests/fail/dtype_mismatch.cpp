// expect: the expression's dtype differs from the tensor's dtype; convert explicitly with fg::cast
// A double expression does not silently narrow into a float tensor.
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 2> a({3, 4});
  fg::Tensor<float, 2> t = fg::cast<double>(a) * 2.0;
}
