// tests/static/kernels.cu — a representative set of fusegrad kernels, compiled (never run) for the
// static checks of tests/static/check_kernels.cmake: the contiguous element-wise kernel moves
// 128-bit words (ld.global.v4 / st.global.v4), and no kernel here spills or uses local memory.
// Covered: element-wise chains (float, half, bool outputs; contiguous, broadcast, permuted and
// sliced operands), fills, full and axis reductions, the gradient nodes of reductions and slices,
// cross-entropy's forward and backward, and the Adam step.
#include <fusegrad/fusegrad.hpp>

namespace fg = fusegrad;

void elementwise(fg::Tensor<float, 2>& y, const fg::Tensor<float, 2>& a, const fg::Tensor<float, 2>& b,
                 const fg::Tensor<float, 1>& bias) {
  y = fg::relu(a * b + 0.5f) - fg::exp(-fg::square(a));  // contiguous: the lanes kernel
  y = fg::tanh(a + bias);                                  // broadcast: the indexed kernel
  y = fg::transpose(a) * 2.f;                              // permuted
  y.fill(0.f);
}

void slices(fg::Tensor<float, 2>& y, const fg::Tensor<float, 2>& a) {
  y = fg::slice(a, 1, 1, 5, 2) + 1.f;
}

void half_and_bool(fg::Tensor<__half, 1>& h, fg::Tensor<bool, 1>& m, const fg::Tensor<__half, 1>& x,
                   const fg::Tensor<float, 1>& f) {
  h = fg::sigmoid(x) * 3.f;
  m = f > 0.f;
}

void reductions(fg::Tensor<float, 0>& s, fg::Tensor<float, 1>& rows, fg::Tensor<float, 1>& cols,
                const fg::Tensor<float, 2>& a) {
  s = fg::sum(fg::square(a));
  rows = fg::max(a, 1);
  cols = fg::mean(a, 0);
}

void gradients(fg::Tensor<float, 2>& a, fg::Tensor<int, 1>& labels) {
  auto [g_max, g_slice] = fg::grad(fg::sum(fg::max(a, 1)) + fg::sum(fg::slice(a, 1, 1, 3)), a, a);
  (void)g_max;
  (void)g_slice;
  auto g_ce = fg::grad(fg::mean(fg::nn::cross_entropy(a, labels)), a);
  (void)g_ce;
}

void adam(fg::Tensor<float, 2>& w, fg::Tensor<float, 1>& b) {
  fg::optim::Adam opt(fg::optim::params(w, b));
  opt.step(fg::grad(fg::sum(fg::square(w)) + fg::sum(b), w, b));
}

// Trees that call routines (double sin/exp, 64-bit division in indexed loads) on the indexed and
// permuted paths: where ptxas is most tempted to spill.
void routines(fg::Tensor<double, 3>& y, const fg::Tensor<double, 3>& a, const fg::Tensor<double, 1>& b,
              fg::Tensor<double, 4>& p, const fg::Tensor<double, 4>& q) {
  y = fg::sin(a * b) + fg::exp(-fg::abs(a)) / (1.0 + fg::cos(b));
  p = fg::permute(q, {3, 1, 0, 2}) * fg::sin(fg::permute(q, {0, 2, 1, 3}));
}
