#!/usr/bin/env python3
"""bench/gemm_torch.py — the peer of bench/gemm.cpp: torch.matmul on the CPU, float32, on the same
shapes, transposes and thread count. bench_gemm runs this script itself (--torch).

  --shapes 128x128x784NN,784x128x8192TN,...   m x n x k, then N or T for each operand: T means the
                                              operand is a transposed view of a row-major tensor
Prints one line per shape:  RESULT shape=<key> gflops=<2mnk / median seconds / 1e9>
"""
import argparse
import sys

from torch_timing import median_seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--budget", type=float, default=0.5, help="seconds of timed calls per shape")
    a = p.parse_args()

    import torch

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    print(f"INFO torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    for key in a.shapes.split(","):
        dims, ops = key[:-2], key[-2:]
        m, n, k = (int(v) for v in dims.split("x"))
        g = torch.Generator().manual_seed(1)
        A = torch.rand((k, m) if ops[0] == "T" else (m, k), generator=g) * 2 - 1
        B = torch.rand((n, k) if ops[1] == "T" else (k, n), generator=g) * 2 - 1
        A = A.t() if ops[0] == "T" else A
        B = B.t() if ops[1] == "T" else B
        out = torch.empty(m, n)
        seconds = median_seconds(lambda: torch.matmul(A, B, out=out), a.budget)
        print(f"RESULT shape={key} gflops={2.0 * m * n * k / seconds / 1e9:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
