// bench/reduce.cpp — s = sum(square(a - b)) over n floats, five ways:
//
//   fused    fusegrad's one map-reduce kernel; (a - b)^2 is never stored       reads 2n:  8n bytes
//   unfused  t = a - b; t2 = square(t); s = sum(t2): 3 kernels, preallocated temporaries
//            3n + 2n + 1n = 6n floats:                                                  24n bytes
//   memcpy   a plain copy of n floats (a -> t1), reading 4n and writing 4n bytes: parallel memcpy
//            on the host, cudaMemcpyAsync device-to-device on CUDA                        8n bytes
//   copy loop  the same copy as a plain loop / kernel with ordinary stores                8n bytes
//            The bandwidth ceiling ("copy") is the faster of the two.
//   hand     a hand-written reduction (host: `omp parallel for` over 16K chunks with an
//            `omp simd` float reduction inside, chunks combined in double; CUDA: grid-stride loop,
//            cub::BlockReduce, one atomicAdd per block)                                  8n bytes
//   eigen    (host, built with Eigen) (A - B).square().sum() on a ThreadPoolDevice
//            with as many threads as OpenMP uses, on the same memory                      8n bytes
//
// Every variant leaves its result in device memory (a rank-0 tensor), as an eager framework's
// sum does; nothing is copied back inside the timed region. GB/s = bytes counted / median time.
#include "common.hpp"

#if defined(FG_BENCH_HAVE_EIGEN) && !defined(__CUDACC__)
#define EIGEN_USE_THREADS
#include <unsupported/Eigen/CXX11/Tensor>
#define FG_BENCH_EIGEN 1
#endif

#if defined(__CUDACC__)
#include <cub/block/block_reduce.cuh>
#endif

namespace {

using fg::index_t;
using Vec = fg::Tensor<float, 1>;
using Scalar = fg::Tensor<float, 0>;

#if defined(__CUDACC__)
constexpr int hand_block = 256;
__global__ void __launch_bounds__(hand_block)
    hand_kernel(index_t n, const float* __restrict__ a, const float* __restrict__ b, float* out) {
  using BlockReduce = cub::BlockReduce<float, hand_block>;
  __shared__ typename BlockReduce::TempStorage temp;
  float acc = 0.f;
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float d = a[i] - b[i];
    acc += d * d;
  }
  acc = BlockReduce(temp).Sum(acc);
  if (threadIdx.x == 0) {
    atomicAdd(out, acc);
  }
}
void hand(index_t n, const float* a, const float* b, float* out) {
  static const int max_blocks = [] {
    int dev = 0, sms = 0;
    FG_CUDA_CHECK(cudaGetDevice(&dev));
    FG_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms * 8;
  }();
  const int blocks = static_cast<int>(std::min<index_t>((n + hand_block - 1) / hand_block, max_blocks));
  FG_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), fg::cuda_stream()));
  hand_kernel<<<blocks, hand_block, 0, fg::cuda_stream()>>>(n, a, b, out);
  FG_CUDA_CHECK(cudaGetLastError());
}
#else
void hand(index_t n, const float* __restrict a, const float* __restrict b, float* out) {
  constexpr index_t chunk = index_t(1) << 14;
  const index_t chunks = (n + chunk - 1) / chunk;
  double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (index_t c = 0; c < chunks; ++c) {
    const index_t end = std::min(n, (c + 1) * chunk);
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (index_t i = c * chunk; i < end; ++i) {
      const float d = a[i] - b[i];
      s += d * d;
    }
    total += s;
  }
  *out = static_cast<float>(total);
}
#endif

double rel_diff(double x, double ref) { return std::abs(x - ref) / std::max(std::abs(ref), 1e-30); }

}  // namespace

int run(const bench::Options& o) {
  const bench::CpuMonitor monitor;
  bench::print_header("reduce: s = sum(square(a - b))", o);

#if defined(FG_BENCH_EIGEN)
  const bool eigen = o.eigen;
  const int nt = bench::threads();
  std::printf("- Eigen %d.%d.%d Tensor module, ThreadPoolDevice with %d threads%s\n", EIGEN_WORLD_VERSION,
              EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, nt, eigen ? "" : " (skipped: --no-eigen)");
  using CMap = Eigen::TensorMap<const Eigen::Tensor<float, 1, Eigen::RowMajor, Eigen::Index>, Eigen::Aligned>;
  using SMap = Eigen::TensorMap<Eigen::Tensor<float, 0, Eigen::RowMajor, Eigen::Index>>;
#else
  const bool eigen = false;
  std::printf("- Eigen: %s\n", bench::on_cuda ? "not on CUDA" : "not found at configure time");
#endif
  std::printf("- bytes counted per call: fused/hand/eigen 8n, unfused 24n, copy 8n (n floats read + written)\n\n");

  std::vector<bench::Row> rows;
  for (int lg = o.min_log2; lg <= o.max_log2; lg += o.step) {
    const index_t n = index_t(1) << lg;
    const double N = static_cast<double>(n);
    const Vec a = fg::random::uniform<float>({n}, -1.f, 1.f, 1);
    const Vec b = fg::random::uniform<float>({n}, -1.f, 1.f, 2);
    Vec t1({n}), t2({n});
    Scalar out;  // every variant's result
    std::vector<std::function<void()>> fs(bench::variants);

    // fused: one map-reduce.
    fs[bench::fused] = [&] { out = fg::sum(fg::square(a - b)); };
    auto k0 = fg::stats::kernel_launches();
    fs[bench::fused]();
    bench::check("fused: kernels per call == 1", lg, std::abs(double(fg::stats::kernel_launches() - k0) - 1), 0);
    const double ref = out.item();  // the reference the others are checked against
    // E[(a - b)^2] = 2/3 for independent uniform(-1, 1) a and b; one term's relative standard
    // deviation is 1.18, so the sum's is 1.18 / sqrt(n): allow 8 of them.
    if (o.check) bench::check("fused sum vs 2n/3 (statistical)", lg, rel_diff(ref, N * 2 / 3), 8 / std::sqrt(N));

    // unfused: three kernels through preallocated temporaries.
    fs[bench::unfused] = [&] {
      t1 = a - b;
      t2 = fg::square(t1);
      out = fg::sum(t2);
    };
    k0 = fg::stats::kernel_launches();
    fs[bench::unfused]();
    bench::check("unfused: kernels per call == 3", lg, std::abs(double(fg::stats::kernel_launches() - k0) - 3), 0);
    if (o.check) bench::check("unfused vs fused", lg, rel_diff(out.item(), ref), 1e-4);

    // copy ceiling: n floats read and n written, a -> t1.
    const bench::Piece pieces[] = {{t1.data(), a.data(), n}};
    fs[bench::memcpy_copy] = [&] { bench::copy_memcpy(pieces); };
    fs[bench::loop_copy] = [&] { bench::copy_loop(pieces); };

    fs[bench::hand] = [&] { hand(n, a.data(), b.data(), out.data()); };
    fs[bench::hand]();
    if (o.check) bench::check("hand vs fused", lg, rel_diff(out.item(), ref), 1e-4);

#if defined(FG_BENCH_EIGEN)
    Eigen::ThreadPool pool(nt);
    Eigen::ThreadPoolDevice eigen_dev(&pool, nt);
    CMap ea(a.data(), n), eb(b.data(), n);
    SMap es(out.data());
    if (eigen) {
      fs[bench::eigen] = [&] { es.device(eigen_dev) = (ea - eb).square().sum(); };
      fs[bench::eigen]();
      if (o.check) bench::check("eigen vs fused", lg, rel_diff(out.item(), ref), 1e-4);
    }
#endif
    if (!eigen) {
      fs.pop_back();
    }

    rows.push_back(bench::measure_row(o, lg, fs));
  }

  //                                 fused unfused memcpy loop hand eigen
  const double bytes_per_n[bench::variants] = {8, 24, 8, 8, 8, 8};
  bench::report(rows, bytes_per_n, eigen);

  const bench::Row& last = rows.back();
  const double to_copy = last.copy() / last.t[bench::fused];
  const double speedup = last.t[bench::unfused] / last.t[bench::fused];
  std::printf("\nAt the largest n (2^%d):\n", last.log2n);
  std::printf("- fused/copy bandwidth %.2f (target >= 0.90; a read-only stream can beat a copy)\n", to_copy);
  std::printf("- fused speedup over unfused %.2fx (counted traffic ratio 24n/8n = 3x)\n", speedup);
  return bench::finish(last, eigen, monitor);
}

int main(int argc, char** argv) { return bench::main_of(argc, argv, run); }
