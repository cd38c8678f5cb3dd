#!/usr/bin/env python3
"""bench/plot_mnist_depth.py — test accuracy and train loss per epoch of `mnist_mlp --hidden-layers N`
from the CSV files the example writes (--csv), one line per depth. Writes a PNG.

    python3 bench/plot_mnist_depth.py bench/results/mnist_depth_*.csv -o bench/results/mnist_depth.png
"""
import argparse
import csv
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for path in sorted(args.csv, key=lambda p: int(re.search(r"(\d+)\.csv$", p).group(1))):
        depth = re.search(r"(\d+)\.csv$", path).group(1)
        with open(path) as f:
            rows = list(csv.DictReader(f))
        epochs = [int(r["epoch"]) for r in rows]
        seconds = sum(float(r["epoch_seconds"]) for r in rows) / len(rows)
        label = f"{depth} hidden layer{'s' if depth != '1' else ''} ({seconds:.2f} s/epoch)"
        left.plot(epochs, [float(r["train_loss"]) for r in rows], marker="o", label=label)
        right.plot(epochs, [float(r["test_accuracy"]) for r in rows], marker="o", label=label)
    left.set(xlabel="epoch", ylabel="train loss (cross-entropy)", title="train loss")
    right.set(xlabel="epoch", ylabel="test accuracy", title="Fashion-MNIST test accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("mnist_mlp --hidden-layers N --width 128 (Adam, batch 128, CPU, 2 threads)")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)


if __name__ == "__main__":
    main()
