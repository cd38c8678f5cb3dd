// expect: needs a floating-point operand; convert integers first with fg::cast<float>
// Transcendental math on an integer tensor asks for an explicit conversion.
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
int main() {
  fg::Tensor<int, 1> labels({8});
  auto e = fg::exp(labels);
}
