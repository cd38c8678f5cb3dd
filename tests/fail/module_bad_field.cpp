// expect: fields: f\(name, member\) takes a fusegrad::Tensor, a module \(a type with `void fields\(auto& f\)`\), or a std::vector / std::array of them
// A module field that is neither a tensor, a module nor a vector/array of them (here an int step
// counter) is a compile-time error that says what a field may be.
#include <fusegrad/fusegrad.hpp>
namespace fg = fusegrad;
struct Layer {
  fg::Tensor<float, 2> weight{{4, 3}};
  int steps = 0;
  void fields(auto& f) {
    f("weight", weight);
    f("steps", steps);
  }
};
int main() {
  Layer layer;
  return static_cast<int>(fg::nn::parameter_names(layer).size());
}
