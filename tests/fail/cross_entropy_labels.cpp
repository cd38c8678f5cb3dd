// expect: cross_entropy: labels must be integers
// Float labels for cross_entropy are caught by the compiler with a sentence, not a backtrace.
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<float, 2> z({3, 4});
  fg::Tensor<float, 1> y({3});
  auto loss = fg::nn::cross_entropy(z, y);
}
