// tests/support/main.cpp — Catch2 runner for both Catch2 majors. The CUDA test executable is built
// with FG_TEST_NEEDS_GPU: with no GPU it exits 77, which CTest reports as skipped.
#if __has_include(<catch2/catch_session.hpp>)
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#if defined(FG_TEST_NEEDS_GPU)
#include <cuda_runtime_api.h>

#include <cstdio>
#endif

int main(int argc, char** argv) {
#if defined(FG_TEST_NEEDS_GPU)
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::puts("no CUDA device: the CUDA tests were compiled but are skipped");
    return 77;
  }
#endif
  return Catch::Session().run(argc, argv);
}
