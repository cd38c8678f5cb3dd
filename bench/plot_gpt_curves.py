#!/usr/bin/env python3
"""bench/plot_gpt_curves.py — the validation (solid) and training (dashed) loss curves of
`char_gpt --csv` and `gpt_train_torch.py --train --csv` on one plot.

  python3 bench/plot_gpt_curves.py fusegrad.csv torch.csv out.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    rows = list(csv.DictReader(open(path)))
    return ([int(r["iter"]) for r in rows], [float(r["train_loss"]) for r in rows],
            [float(r["val_loss"]) for r in rows])


def main():
    fg_csv, torch_csv, out = sys.argv[1:4]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for path, label, color in ((fg_csv, "fusegrad", "tab:blue"), (torch_csv, "PyTorch", "tab:orange")):
        it, tr, va = read(path)
        ax.plot(it, va, color=color, marker="o", label=f"{label} validation (final {va[-1]:.3f})")
        ax.plot(it, tr, color=color, linestyle="--", alpha=0.7, label=f"{label} train")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title("char-GPT, nanoGPT CPU config, Debian fortunes")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
