// bench/elementwise.cpp — y = a * b + c * 2 - relu(d) over n floats, five ways:
//
//   fused    fusegrad's one kernel for the whole expression          reads 4n, writes n: 20n bytes
//   unfused  the same, op by op into preallocated temporaries, as an eager framework with a caching
//            allocator runs it:
//            t1 = a*b; t2 = c*2; t3 = t1+t2; t4 = relu(d); y = t3-t4 (5 kernels)
//            3n + 2n + 3n + 2n + 3n = 13n floats:                                    52n bytes
//   memcpy   a plain copy of 2.5n floats (a -> t1, b -> t2, half of c -> t3), reading 10n and
//            writing 10n bytes: parallel memcpy on the host, cudaMemcpyAsync on CUDA      20n bytes
//   copy loop  the same copy as a plain loop / kernel with ordinary stores               20n bytes
//            The bandwidth ceiling ("copy") is the faster of the two.
//   hand     a hand-written loop (host: `omp parallel for simd`; CUDA: one thread per element)
//            of the same expression: what the fused kernel should match            20n bytes
//   eigen    (host, built with Eigen) Eigen::Tensor on a ThreadPoolDevice with as many threads
//            as OpenMP uses, on the same memory                                      20n bytes
//
// GB/s = bytes counted above / median time. Write-allocate traffic (a CPU store that misses reads
// the line first) is not counted for any variant; see bench/RESULTS.md.
#include "common.hpp"

#if defined(FG_BENCH_HAVE_EIGEN) && !defined(__CUDACC__)
#define EIGEN_USE_THREADS
#include <unsupported/Eigen/CXX11/Tensor>
#define FG_BENCH_EIGEN 1
#endif

namespace {

using fg::index_t;
using Vec = fg::Tensor<float, 1>;

#if defined(__CUDACC__)
__global__ void hand_kernel(index_t n, const float* __restrict__ a, const float* __restrict__ b,
                            const float* __restrict__ c, const float* __restrict__ d, float* __restrict__ y) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    const float r = d[i] < 0.f ? 0.f : d[i];
    y[i] = a[i] * b[i] + c[i] * 2.f - r;
  }
}
void hand(index_t n, const float* a, const float* b, const float* c, const float* d, float* y) {
  const auto blocks = static_cast<unsigned>((n + 255) / 256);
  hand_kernel<<<blocks, 256, 0, fg::cuda_stream()>>>(n, a, b, c, d, y);
  FG_CUDA_CHECK(cudaGetLastError());
}
#else
void hand(index_t n, const float* __restrict a, const float* __restrict b, const float* __restrict c,
          const float* __restrict d, float* __restrict y) {
#pragma omp parallel for simd schedule(static)
  for (index_t i = 0; i < n; ++i) {
    const float r = d[i] < 0.f ? 0.f : d[i];
    y[i] = a[i] * b[i] + c[i] * 2.f - r;
  }
}
#endif

/// max |x - ref| over all elements, computed by fusegrad (one fused map-reduce).
double max_abs_diff(const Vec& x, const Vec& ref) { return fg::max(fg::abs(x - ref)).item(); }

}  // namespace

int run(const bench::Options& o) {
  const bench::CpuMonitor monitor;
  bench::print_header("elementwise: y = a * b + c * 2 - relu(d)", o);

#if defined(FG_BENCH_EIGEN)
  const bool eigen = o.eigen;
  const int nt = bench::threads();
  std::printf("- Eigen %d.%d.%d Tensor module, ThreadPoolDevice with %d threads%s\n", EIGEN_WORLD_VERSION,
              EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, nt, eigen ? "" : " (skipped: --no-eigen)");
  using EMap = Eigen::TensorMap<Eigen::Tensor<float, 1, Eigen::RowMajor, Eigen::Index>, Eigen::Aligned>;
  using CMap = Eigen::TensorMap<const Eigen::Tensor<float, 1, Eigen::RowMajor, Eigen::Index>, Eigen::Aligned>;
#else
  const bool eigen = false;
  std::printf("- Eigen: %s\n", bench::on_cuda ? "not on CUDA" : "not found at configure time");
#endif
  std::printf("- bytes counted per call: fused/hand/eigen 20n, unfused 52n, copy 20n (2.5n floats read + written)\n\n");

  std::vector<bench::Row> rows;
  for (int lg = o.min_log2; lg <= o.max_log2; lg += o.step) {
    const index_t n = index_t(1) << lg;
    const Vec a = fg::random::uniform<float>({n}, -1.f, 1.f, 1);
    const Vec b = fg::random::uniform<float>({n}, -1.f, 1.f, 2);
    const Vec c = fg::random::uniform<float>({n}, -1.f, 1.f, 3);
    const Vec d = fg::random::uniform<float>({n}, -1.f, 1.f, 4);
    // Every variant writes `out` (the same memory, so page placement cannot favour one); `y`
    // holds the fused result computed once, the reference the others are checked against.
    Vec y({n}), out({n});
    Vec t1({n}), t2({n}), t3({n}), t4({n});                // the unfused variant's temporaries
    std::vector<std::function<void()>> fs(bench::variants);

    // fused: one kernel.
    y = a * b + c * 2.f - fg::relu(d);
    fs[bench::fused] = [&] { out = a * b + c * 2.f - fg::relu(d); };
    auto k0 = fg::stats::kernel_launches();
    fs[bench::fused]();
    bench::check("fused: kernels per call == 1", lg, std::abs(double(fg::stats::kernel_launches() - k0) - 1), 0);
    if (o.check) bench::check("fused (out) vs fused (y)", lg, max_abs_diff(out, y), 0);

    // unfused: five kernels through preallocated temporaries.
    fs[bench::unfused] = [&] {
      t1 = a * b;
      t2 = c * 2.f;
      t3 = t1 + t2;
      t4 = fg::relu(d);
      out = t3 - t4;
    };
    k0 = fg::stats::kernel_launches();
    fs[bench::unfused]();
    bench::check("unfused: kernels per call == 5", lg, std::abs(double(fg::stats::kernel_launches() - k0) - 5), 0);
    if (o.check) bench::check("unfused vs fused", lg, max_abs_diff(out, y), 1e-5);

    // copy ceiling: 2.5n floats read and 2.5n written, as a -> t1, b -> t2, half of c -> t3.
    const bench::Piece pieces[] = {{t1.data(), a.data(), n}, {t2.data(), b.data(), n}, {t3.data(), c.data(), n / 2}};
    fs[bench::memcpy_copy] = [&] { bench::copy_memcpy(pieces); };
    fs[bench::loop_copy] = [&] { bench::copy_loop(pieces); };

    // hand-written loop / kernel.
    fs[bench::hand] = [&] { hand(n, a.data(), b.data(), c.data(), d.data(), out.data()); };
    fs[bench::hand]();
    if (o.check) bench::check("hand vs fused", lg, max_abs_diff(out, y), 1e-5);

    // Eigen::Tensor, same memory, same thread count.
#if defined(FG_BENCH_EIGEN)
    Eigen::ThreadPool pool(nt);
    Eigen::ThreadPoolDevice eigen_dev(&pool, nt);
    CMap ea(a.data(), n), eb(b.data(), n), ec(c.data(), n), ed(d.data(), n);
    EMap ey(out.data(), n);
    if (eigen) {
      fs[bench::eigen] = [&] { ey.device(eigen_dev) = ea * eb + ec * 2.f - ed.cwiseMax(0.f); };
      fs[bench::eigen]();
      if (o.check) bench::check("eigen vs fused", lg, max_abs_diff(out, y), 1e-5);
    }
#endif
    if (!eigen) {
      fs.pop_back();
    }

    rows.push_back(bench::measure_row(o, lg, fs));
  }

  //                                 fused unfused memcpy loop hand eigen
  const double bytes_per_n[bench::variants] = {20, 52, 20, 20, 20, 20};
  bench::report(rows, bytes_per_n, eigen);

  const bench::Row& last = rows.back();
  const double to_copy = last.copy() / last.t[bench::fused];
  const double speedup = last.t[bench::unfused] / last.t[bench::fused];
  std::printf("\nTargets at the largest n (2^%d):\n", last.log2n);
  std::printf("- fused/copy bandwidth %.2f (target >= 0.90): %s\n", to_copy, to_copy >= 0.9 ? "met" : "NOT met");
  std::printf("- fused speedup over unfused %.2fx (target >= 3x; counted traffic ratio 52n/20n = 2.6x): %s\n",
              speedup, speedup >= 3.0 ? "met" : "NOT met");
  return bench::finish(last, eigen, monitor);
}

int main(int argc, char** argv) { return bench::main_of(argc, argv, run); }
