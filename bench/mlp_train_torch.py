#!/usr/bin/env python3
"""bench/mlp_train_torch.py — the peer of bench/mlp_train.cpp: the same 784-128-ReLU-10 network,
softmax cross-entropy, Adam (lr 1e-3, PyTorch's default implementation for the device), float32,
synthetic data of the same shapes, timed per training step in PyTorch eager mode and with
torch.compile (mode="reduce-overhead" on CUDA, which adds CUDA graphs; the default mode on the
CPU). bench_mlp_train runs this script itself (--torch) and prints both in one table.

Prints one RESULT line per batch size (bench/train_peer.py). Kernels per step are counted with
torch.profiler (CUDA kernels only; -1 on the CPU).
"""
import sys

from train_peer import run


def mlp(args, torch):
    return torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


if __name__ == "__main__":
    sys.exit(run(mlp, "64,128,256,1024,8192"))
