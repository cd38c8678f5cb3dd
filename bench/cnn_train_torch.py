#!/usr/bin/env python3
"""bench/cnn_train_torch.py — the peer of bench/cnn_train.cpp: the same CNN as examples/mnist_cnn.hpp
(two blocks of conv 3x3 without bias -> BatchNorm2d (training mode) -> ReLU -> max-pool 2, then a
linear layer; channels 32 and 64 by default), softmax cross-entropy, Adam (lr 1e-3), float32,
synthetic images of the same shapes, timed per training step in PyTorch eager mode (oneDNN
convolutions on the CPU, cuDNN on CUDA) and with torch.compile (mode="reduce-overhead" on CUDA, the
default mode on the CPU). bench_cnn_train runs this script itself (--torch) and prints both in one
table. One RESULT line per batch size (bench/train_peer.py).
"""
import sys

from train_peer import run


def cnn(args, torch):
    c1, c2 = (int(c) for c in args.channels.split(","))
    nn = torch.nn
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 49, 10))


if __name__ == "__main__":
    sys.exit(run(cnn, "64,256", lambda p: p.add_argument("--channels", default="32,64")))
