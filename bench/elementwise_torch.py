#!/usr/bin/env python3
"""bench/elementwise_torch.py — PyTorch eager's y = a * b + c * 2 - relu(d) over n float32 values on
the CPU, the expression bench/elementwise.cpp times, counted as bench_elementwise counts the fused
kernel (20n bytes: four inputs read, one output written) so the two GB/s figures compare times.
bench/contention.sh runs it beside fusegrad under the same load.

Prints:  RESULT n=<n> ms=<median ms per evaluation> gbs=<20n bytes / median time / 1e9>
"""
import argparse
import sys

from torch_timing import median_seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log2n", type=int, default=22)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--budget", type=float, default=0.3, help="seconds of timed evaluations")
    a = p.parse_args()

    import torch

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    n = 1 << a.log2n
    g = torch.Generator().manual_seed(1)
    x = [torch.rand(n, generator=g) * 2 - 1 for _ in range(4)]
    out = torch.empty(n)

    def run():
        torch.sub(x[0] * x[1] + x[2] * 2, torch.relu(x[3]), out=out)

    med = median_seconds(run, a.budget)
    print(f"RESULT n={n} ms={med * 1e3:.3f} gbs={20.0 * n / med / 1e9:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
