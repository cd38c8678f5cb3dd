// tests/test_matmul_half.cpp — products whose operands are stored in half and bfloat16 (CUDA),
// against a double reference computed from the same rounded inputs:
//   - plain, transposed-view, batched and nested products, and expression operands
//     (`matmul(relu(a), w)`, `matmul(a, relu(w))`, `matmul(relu(a), relu(w))`), which the GEMM
//     reads in the operands' storage dtype (the expression is evaluated into half: one kernel);
//   - into half, bfloat16 and float tensors, each poisoned first; what each takes (kernels, GEMMs);
//   - gradients with half or bfloat16 storage — a small MLP (one expression, and two statements
//     through a Var), a batched layer with a shared weight, a weight read by three products —
//     against the same model in float from the same rounded values, and against gradients
//     computed here by hand in double.
// Built by a host compiler, the same checks run with float (against double), since the host backend
// stores no 16-bit type: the half/bfloat16 instantiations run only on a GPU.
#include <fusegrad/fusegrad.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_matmul_half {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using fgtest::Ref;

// ---- dtypes -------------------------------------------------------------------------------------

/// Machine epsilon of a storage type (2^-10 for half, 2^-7 for bfloat16).
template <class T>
constexpr double dtype_eps() {
#if defined(FG_BACKEND_CUDA)
  if constexpr (std::is_same_v<T, fg::half>) {
    return 0x1p-10;
  } else if constexpr (std::is_same_v<T, fg::bfloat16>) {
    return 0x1p-7;
  } else {
    return fgtest::eps_of<T>();
  }
#else
  return fgtest::eps_of<T>();
#endif
}

template <class T>
double widen(T x) {
  if constexpr (std::is_same_v<T, double>) {
    return x;
  } else {
    return static_cast<double>(static_cast<float>(x));
  }
}

/// The value of a double once stored as T.
template <class T>
double round_to(double x) {
  if constexpr (std::is_same_v<T, double>) {
    return x;
  } else {
    return widen(static_cast<T>(static_cast<float>(x)));
  }
}

template <class T, int R>
Ref ref_of(const fg::Tensor<T, R>& t) {
  const auto host = t.to_vector();
  std::vector<double> v(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) {
    v[i] = widen(host[i]);
  }
  return Ref(fgtest::dims_of(t.shape()), std::move(v));
}

template <class T>
T nan_of() {
  return static_cast<T>(std::numeric_limits<float>::quiet_NaN());
}

/// A tensor of T with values uniform in ±[0.125, 1] (never zero, also once rounded to T).
template <class T, int R>
fg::Tensor<T, R> random_input(const Dims& dims, std::mt19937& rng) {
  std::uniform_real_distribution<double> magnitude(0.125, 1.0);
  std::bernoulli_distribution negative(0.5);
  std::vector<T> host(static_cast<std::size_t>(fgtest::numel(dims)));
  for (auto& x : host) {
    const double v = magnitude(rng);
    x = static_cast<T>(static_cast<float>(negative(rng) ? -v : v));
  }
  fg::Tensor<T, R> t(fgtest::shape_of<R>(dims));
  t.copy_from(std::span<const T>(host));
  return t;
}

// ---- products ---------------------------------------------------------------------------------

/// What evaluating a product into a NaN-poisoned tensor gave.
struct Outcome {
  Ref got;
  std::int64_t launches = 0;
  std::int64_t gemms = 0;
  bool in_place = false;
};

template <class O, int R, class E>
Outcome evaluate_into(const E& e) {
  fg::Tensor<O, R> out = fgtest::filled<O, R>(e.shape(), nan_of<O>());
  const O* storage = out.data();
  fgtest::LaunchCounter count;
  out = e;
  return Outcome{ref_of(out), count.launches(), count.gemms(), out.data() == storage};
}

/// What a product's result may differ from the exact one by, per element: the classic bound for
/// a K-term dot product accumulated in the compute type, 2 (K + 1) eps_acc sum_k |a_ik b_kj|; an
/// operand rounded to its storage dtype in the reference too, to within one unit of that dtype
/// (nested products: the inner result is stored as half), eps_operand times the same sum; the
/// rounding of the result to the output dtype, eps_out |c_ij|; and half's subnormal spacing 2^-24.
struct Tolerance {
  double eps_acc = 0, eps_operand = 0, eps_out = 0;
};

inline void check_product(const Outcome& o, const Ref& ra, const Ref& rb, const Tolerance& t,
                          std::int64_t kernels, std::int64_t gemms, const std::string& what) {
  INFO(what << ": " << fgtest::dims_str(ra.shape) << " @ " << fgtest::dims_str(rb.shape));
  Ref scale;
  const Ref want = fgtest::matmul(ra, rb, &scale);
  REQUIRE(want.size() > 0);
  const double k = static_cast<double>(ra.shape.back());
  Ref tol = scale;
  for (std::size_t i = 0; i < tol.v.size(); ++i) {
    tol.v[i] = (2 * (k + 1) * t.eps_acc + t.eps_operand) * scale.v[i] +
               t.eps_out * std::abs(want.v[i]) + 0x1p-24;
  }
  CHECK(o.in_place);
  CHECK(o.gemms == gemms);
  CHECK(o.launches - o.gemms == kernels);  // launches count GEMMs too
  CHECK(fgtest::compare_scaled(o.got, want, tol) == "");
}

inline Ref relu_ref(const Ref& a) {
  return fgtest::map1(a, [](double x) { return x > 0 ? x : 0.0; });
}

/// Every form of product of H operands, into O tensors, with the kernels (besides GEMMs) each
/// takes. `convert` is 1 when the GEMM cannot write O itself (half operands into a bfloat16
/// tensor): one kernel stores the float product as O.
template <class H, class O>
void check_products(std::uint32_t seed) {
  std::mt19937 rng(seed);
  const index_t m = 33, k = 65, n = 17, batch = 3;
  using C = fg::compute_t<H>;
  const std::int64_t convert = std::is_same_v<O, H> || std::is_same_v<O, C> ? 0 : 1;
  const Tolerance tol{fgtest::eps_of<C>(), 0.0, dtype_eps<O>()};

  const auto a = random_input<H, 2>({m, k}, rng);
  const auto w = random_input<H, 2>({k, n}, rng);
  const auto at = random_input<H, 2>({k, m}, rng);  // read as its transpose (m, k)
  const auto wt = random_input<H, 2>({n, k}, rng);  // read as its transpose (k, n)
  const auto a3 = random_input<H, 3>({batch, m, k}, rng);
  const auto w3 = random_input<H, 3>({batch, k, n}, rng);
  const Ref ra = ref_of(a), rw = ref_of(w), rat = ref_of(at), rwt = ref_of(wt), ra3 = ref_of(a3),
            rw3 = ref_of(w3);

  // Leaves, plain and transposed: the GEMM reads them in place.
  check_product(evaluate_into<O, 2>(fg::matmul(a, w)), ra, rw, tol, convert, 1, "plain");
  check_product(evaluate_into<O, 2>(fg::matmul(fg::transpose(at), w)), fgtest::transpose(rat), rw,
                tol, convert, 1, "transposed lhs");
  check_product(evaluate_into<O, 2>(fg::matmul(a, fg::transpose(wt))), ra, fgtest::transpose(rwt),
                tol, convert, 1, "transposed rhs");
  check_product(evaluate_into<O, 3>(fg::matmul(a3, w)), ra3, rw, tol, convert, 1,
                "batched, shared rhs");
  check_product(evaluate_into<O, 3>(fg::matmul(a3, w3)), ra3, rw3, tol, convert, 1, "batched");

  // Expression operands: evaluated into H (one kernel each; relu of H values is exact in H).
  check_product(evaluate_into<O, 2>(fg::matmul(fg::relu(a), w)), relu_ref(ra), rw, tol, 1 + convert,
                1, "relu(a) @ w");
  check_product(evaluate_into<O, 2>(fg::matmul(a, fg::relu(w))), ra, relu_ref(rw), tol, 1 + convert,
                1, "a @ relu(w)");
  check_product(evaluate_into<O, 2>(fg::matmul(fg::relu(a), fg::relu(w))), relu_ref(ra),
                relu_ref(rw), tol, 2 + convert, 1, "relu(a) @ relu(w)");
  check_product(evaluate_into<O, 2>(fg::matmul(fg::transpose(fg::relu(at)), w)),
                fgtest::transpose(relu_ref(rat)), rw, tol, 1 + convert, 1,
                "transpose(relu(at)) @ w");
  check_product(evaluate_into<O, 3>(fg::matmul(fg::relu(a3), w)), relu_ref(ra3), rw, tol,
                1 + convert, 1, "batched relu(a) @ w");

  // A product read by a product: computed straight into H (no conversion kernel), so the reference
  // rounds it to H too (to within one unit of H: cuBLAS rounds its float sum, not the exact one).
  Ref inner = fgtest::matmul(ra, rw);
  for (auto& x : inner.v) {
    x = round_to<H>(x);
  }
  const auto w2 = random_input<H, 2>({n, 9}, rng);
  Tolerance nested = tol;
  nested.eps_operand = dtype_eps<H>();
  check_product(evaluate_into<O, 2>(fg::matmul(fg::matmul(a, w), w2)), inner, ref_of(w2), nested,
                convert, 2, "(a @ w) @ w2");
}

TEST_CASE(
    "matmul of stored-dtype operands: leaves, views, batches, expressions (host: float, double)",
    "[matmul][half]") {
  check_products<float, float>(4201);
  check_products<double, double>(4202);
}

#if defined(FG_BACKEND_CUDA)
TEST_CASE("matmul: half operands into half, float and bfloat16 tensors", "[matmul][half][cuda]") {
  check_products<fg::half, fg::half>(4203);
  check_products<fg::half, float>(4204);
  check_products<fg::half, fg::bfloat16>(4205);
}
TEST_CASE("matmul: bfloat16 operands into bfloat16, float and half tensors",
          "[matmul][half][cuda]") {
  check_products<fg::bfloat16, fg::bfloat16>(4206);
  check_products<fg::bfloat16, float>(4207);
  check_products<fg::bfloat16, fg::half>(4208);
}
#endif

// ---- gradients --------------------------------------------------------------------------------

/// The dtype the H network is checked against: float for half and bfloat16 (and for float, double).
template <class H>
using wider_t =
    std::conditional_t<std::is_same_v<H, float> || std::is_same_v<H, double>, double, float>;

/// How far gradients computed with values stored as H may be from the exact ones, relative to each
/// gradient's largest element. Rounding to H happens where the network stores or reads a value as
/// H: the hidden activations as the second GEMM reads them, the upstream gradients as the backward
/// GEMMs read them (against H weights), and every gradient of an H tensor (a sum of contributions:
/// once per contribution). Each is one rounding (eps/2) of a value that later products and sums
/// carry forward with no growth beyond a small factor; an emulation of exactly these roundings
/// (400 seeds, the MLP below) stays within 1.05 eps of H. So 4 eps of H, plus the accumulation
/// bound of the compute type for the longest sum (`terms`: 2 (terms + 1) eps, what float against
/// double needs), with room. A wrong gradient (transposed, a missing term, a lost accumulation)
/// is off by O(1).
template <class H>
double grad_tolerance(index_t terms) {
  return 4 * dtype_eps<H>() +
         2 * static_cast<double>(terms + 1) * fgtest::eps_of<fg::compute_t<H>>();
}

/// max |got - want| <= tol * max |want| (an ∞-norm bound: elements that cancel to near zero are
/// held to the scale of the whole gradient, as their rounding errors are), and want not all zero.
inline void check_close(const Ref& got, const Ref& want, double tol, const std::string& what) {
  INFO(what);
  double scale = 0;
  for (double x : want.v) {
    scale = std::max(scale, std::abs(x));
  }
  CHECK(scale > 0);
  CHECK(fgtest::compare(got, want, 0.0, tol * scale) == "");
}

/// A gradient of the H network against the wider network's (within H's tolerance) and against the
/// exact one computed here from the same rounded values (so a fault common to every dtype shows
/// too); the wider network's against the exact one, within its own tolerance.
inline void check_gradient(const Ref& got, const Ref& wider, const Ref& exact, double tol,
                           double tol_wider, const std::string& what) {
  check_close(got, wider, tol, what + ": stored dtype against the wider one");
  check_close(got, exact, tol, what + ": stored dtype against the exact gradient");
  check_close(wider, exact, tol_wider, what + ": wider dtype against the exact gradient");
}

inline double add(double u, double v) {
  return u + v;
}
inline double relu_mask(double g, double z) {
  return z > 0 ? g : 0.0;
}

/// x (B, D), W1 (D, Hd), b1 (Hd), W2t (C, Hd) read as its transpose, b2 (C).
template <class T>
struct Mlp {
  fg::Tensor<T, 2> x, W1, W2t;
  fg::Tensor<T, 1> b1, b2;
};

template <class T, class Y>
auto mlp_loss(const Mlp<T>& p, const Y& labels) {
  auto logits = fg::matmul(fg::relu(fg::matmul(p.x, p.W1) + p.b1), fg::transpose(p.W2t)) + p.b2;
  return fg::mean(fg::nn::cross_entropy(logits, labels));
}

template <class W, class H>
Mlp<W> widened(const Mlp<H>& p) {
  return Mlp<W>{fg::cast<W>(p.x), fg::cast<W>(p.W1), fg::cast<W>(p.W2t), fg::cast<W>(p.b1),
                fg::cast<W>(p.b2)};
}

/// The MLP's loss and gradients in double, by hand.
struct MlpGradients {
  double loss = 0;
  Ref dx, dW1, db1, dW2t, db2;
};

inline MlpGradients mlp_reference(const Ref& x, const Ref& W1, const Ref& b1, const Ref& W2t,
                                  const Ref& b2, const std::vector<int>& labels) {
  using namespace fgtest;
  const Ref z1 = map2(matmul(x, W1), b1, add);                   // (B, Hd)
  const Ref a1 = relu_ref(z1);                                   // (B, Hd)
  const Ref logits = map2(matmul(a1, transpose(W2t)), b2, add);  // (B, C)
  const index_t rows = logits.shape[0], classes = logits.shape[1];
  MlpGradients r;
  Ref g2(logits.shape);  // d loss / d logits = (softmax - onehot) / B
  for (index_t i = 0; i < rows; ++i) {
    const double* z = &logits.v[static_cast<std::size_t>(i * classes)];
    const double top = *std::max_element(z, z + classes);
    double sum = 0;
    for (index_t j = 0; j < classes; ++j) {
      sum += std::exp(z[j] - top);
    }
    const double lse = top + std::log(sum);
    const int y = labels[static_cast<std::size_t>(i)];
    r.loss += (lse - z[y]) / static_cast<double>(rows);
    for (index_t j = 0; j < classes; ++j) {
      g2.v[static_cast<std::size_t>(i * classes + j)] =
          (std::exp(z[j] - lse) - (j == y ? 1.0 : 0.0)) / static_cast<double>(rows);
    }
  }
  r.db2 = reduce_axis(g2, Red::sum, 0);
  r.dW2t = transpose(matmul(transpose(a1), g2));         // (C, Hd)
  const Ref dz1 = map2(matmul(g2, W2t), z1, relu_mask);  // (B, Hd)
  r.db1 = reduce_axis(dz1, Red::sum, 0);
  r.dW1 = matmul(transpose(x), dz1);  // (D, Hd)
  r.dx = matmul(dz1, transpose(W1));  // (B, D)
  return r;
}

template <class H>
void check_mlp(std::uint32_t seed) {
  using W = wider_t<H>;
  std::mt19937 rng(seed);
  const index_t batch = 32, d = 24, hidden = 16, classes = 10;
  const Mlp<H> h{random_input<H, 2>({batch, d}, rng), random_input<H, 2>({d, hidden}, rng),
                 random_input<H, 2>({classes, hidden}, rng), random_input<H, 1>({hidden}, rng),
                 random_input<H, 1>({classes}, rng)};
  const auto labels =
      fgtest::random_tensor<int, 1>(Dims{batch}, rng, 0, static_cast<double>(classes - 1));
  const Mlp<W> w = widened<W>(h);
  const MlpGradients exact = mlp_reference(ref_of(h.x), ref_of(h.W1), ref_of(h.b1), ref_of(h.W2t),
                                           ref_of(h.b2), labels.to_vector());
  const double tol = grad_tolerance<H>(batch), tol_wider = grad_tolerance<W>(batch);

  auto [value_h, grads_h] = fg::value_and_grad(mlp_loss(h, labels), h.x, h.W1, h.b1, h.W2t, h.b2);
  auto [value_w, grads_w] = fg::value_and_grad(mlp_loss(w, labels), w.x, w.W1, w.b1, w.W2t, w.b2);
  const double loss_h = widen(value_h.item()), loss_w = widen(value_w.item());
  INFO("loss " << loss_h << " (" << fg::dtype_traits<H>::name << "), " << loss_w << " ("
               << fg::dtype_traits<W>::name << "), " << exact.loss << " (exact)");
  CHECK(std::abs(loss_h - exact.loss) <= tol * exact.loss);
  CHECK(std::abs(loss_w - exact.loss) <= tol_wider * exact.loss);
  const auto& [gx, gW1, gb1, gW2t, gb2] = grads_h;
  const auto& [rx, rW1, rb1, rW2t, rb2] = grads_w;
  check_gradient(ref_of(gx), ref_of(rx), exact.dx, tol, tol_wider, "dx = dZ1 W1ᵀ");
  check_gradient(ref_of(gW1), ref_of(rW1), exact.dW1, tol, tol_wider, "dW1 = xᵀ dZ1");
  check_gradient(ref_of(gb1), ref_of(rb1), exact.db1, tol, tol_wider, "db1");
  check_gradient(ref_of(gW2t), ref_of(rW2t), exact.dW2t, tol, tol_wider,
                 "dW2t = (hᵀ dZ2)ᵀ, a transposed view");
  check_gradient(ref_of(gb2), ref_of(rb2), exact.db2, tol, tol_wider, "db2");

  // The hidden layer as a statement of its own: its value is stored as H, and its gradient
  // arrives as H.
  fg::Var<H, 2> a = fg::relu(fg::matmul(h.x, h.W1) + h.b1);
  const auto [sx, sW1, sb1, sW2t] =
      fg::grad(fg::mean(fg::nn::cross_entropy(fg::matmul(a, fg::transpose(h.W2t)) + h.b2, labels)),
               h.x, h.W1, h.b1, h.W2t);
  check_gradient(ref_of(sx), ref_of(rx), exact.dx, tol, tol_wider, "statements: dx");
  check_gradient(ref_of(sW1), ref_of(rW1), exact.dW1, tol, tol_wider, "statements: dW1");
  check_gradient(ref_of(sb1), ref_of(rb1), exact.db1, tol, tol_wider, "statements: db1");
  check_gradient(ref_of(sW2t), ref_of(rW2t), exact.dW2t, tol, tol_wider, "statements: dW2t");
}

/// mean(relu(x W + b)²) for x (B, T, D) and a shared W (D, Hd): dW sums over the batch in one GEMM,
/// (B·T, D)ᵀ (B·T, Hd), whose gradient operand is converted to H.
template <class H>
void check_batched_layer(std::uint32_t seed) {
  using W = wider_t<H>;
  std::mt19937 rng(seed);
  const index_t batch = 4, steps = 8, d = 24, hidden = 16;
  const auto x = random_input<H, 3>({batch, steps, d}, rng);
  const auto w = random_input<H, 2>({d, hidden}, rng);
  const auto b = random_input<H, 1>({hidden}, rng);
  const fg::Tensor<W, 3> xw = fg::cast<W>(x);
  const fg::Tensor<W, 2> ww = fg::cast<W>(w);
  const fg::Tensor<W, 1> bw = fg::cast<W>(b);
  auto loss = [](const auto& x_, const auto& w_, const auto& b_) {
    return fg::mean(fg::square(fg::relu(fg::matmul(x_, w_) + b_)));
  };
  const auto [gx, gw, gb] = fg::grad(loss(x, w, b), x, w, b);
  const auto [rx, rw, rb] = fg::grad(loss(xw, ww, bw), xw, ww, bw);

  using namespace fgtest;
  const Ref rows = reshape(ref_of(x), {batch * steps, d});      // (B·T, D)
  const Ref z = map2(matmul(rows, ref_of(w)), ref_of(b), add);  // (B·T, Hd)
  Ref dz = relu_ref(z);                                         // 2 relu(z) / n, 0 where z <= 0
  for (auto& v : dz.v) {
    v *= 2.0 / static_cast<double>(dz.size());
  }
  const double tol = grad_tolerance<H>(batch * steps), tol_wider = grad_tolerance<W>(batch * steps);
  check_gradient(ref_of(gx), ref_of(rx),
                 reshape(matmul(dz, transpose(ref_of(w))), {batch, steps, d}), tol, tol_wider,
                 "batched: dx");
  check_gradient(ref_of(gw), ref_of(rw), matmul(transpose(rows), dz), tol, tol_wider,
                 "batched: dW, summed over the batch");
  check_gradient(ref_of(gb), ref_of(rb), reduce_axis(dz, Red::sum, 0), tol, tol_wider,
                 "batched: db");
}

/// mean((a W + relu(c) W + e W)²): three products add their gradients to W's, the second and the
/// third by the GEMM itself (beta = 1). Into an H gradient, aᵀ g and eᵀ g are H GEMMs that add into
/// H memory; relu(c)ᵀ g reads float values (relu(c), a GEMM operand, is saved in float), so it is
/// computed in float and stored, or added, by one kernel.
template <class H>
void check_shared_weight(std::uint32_t seed) {
  using W = wider_t<H>;
  std::mt19937 rng(seed);
  const index_t m = 20, k = 12, n = 7;
  const auto a = random_input<H, 2>({m, k}, rng);
  const auto c = random_input<H, 2>({m, k}, rng);
  const auto e = random_input<H, 2>({m, k}, rng);
  const auto w = random_input<H, 2>({k, n}, rng);
  const fg::Tensor<W, 2> aw = fg::cast<W>(a), cw = fg::cast<W>(c), ew = fg::cast<W>(e),
                         ww = fg::cast<W>(w);
  auto loss = [](const auto& a_, const auto& c_, const auto& e_, const auto& w_) {
    return fg::mean(
        fg::square(fg::matmul(a_, w_) + fg::matmul(fg::relu(c_), w_) + fg::matmul(e_, w_)));
  };
  const auto [ga, gw] = fg::grad(loss(a, c, e, w), a, w);
  const auto [ra, rw] = fg::grad(loss(aw, cw, ew, ww), aw, ww);

  using namespace fgtest;
  const Ref sum = map2(map2(ref_of(a), relu_ref(ref_of(c)), add), ref_of(e), add);  // (M, K)
  Ref g = matmul(sum, ref_of(w));                                                   // (M, N)
  for (auto& v : g.v) {
    v *= 2.0 / static_cast<double>(g.size());
  }
  const double tol = grad_tolerance<H>(m), tol_wider = grad_tolerance<W>(m);
  check_gradient(ref_of(ga), ref_of(ra), matmul(g, transpose(ref_of(w))), tol, tol_wider,
                 "shared weight: da");
  check_gradient(ref_of(gw), ref_of(rw), matmul(transpose(sum), g), tol, tol_wider,
                 "shared weight: dW, three products added");
}

TEST_CASE(
    "grad: an MLP, a batched layer, a shared weight, against a wider dtype and by hand "
    "(host: float)",
    "[matmul][half][autodiff]") {
  check_mlp<float>(4301);
  check_batched_layer<float>(4302);
  check_shared_weight<float>(4303);
}

#if defined(FG_BACKEND_CUDA)
TEST_CASE("grad: half MLP, batched layer and shared weight against float and by hand",
          "[matmul][half][autodiff][cuda]") {
  check_mlp<fg::half>(4311);
  check_batched_layer<fg::half>(4312);
  check_shared_weight<fg::half>(4313);
}
TEST_CASE("grad: bfloat16 MLP, batched layer and shared weight against float and by hand",
          "[matmul][half][autodiff][cuda]") {
  check_mlp<fg::bfloat16>(4321);
  check_batched_layer<fg::bfloat16>(4322);
  check_shared_weight<fg::bfloat16>(4323);
}
#endif

}  // namespace test_matmul_half
