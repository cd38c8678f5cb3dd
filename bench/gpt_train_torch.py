#!/usr/bin/env python3
"""bench/gpt_train_torch.py — the peer of examples/char_gpt.cpp and bench/gpt_train.cpp: the same
character-level GPT in PyTorch (token + position embeddings, pre-norm blocks of causal
self-attention and an exact-GELU MLP, final layer norm, untied head, biases everywhere), the same
initialisation scheme (N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)), zero biases),
the same corpus, byte vocabulary, 90/10 split and batch offsets (the same SplitMix64 stream), the
same AdamW groups (weight decay 0.1 on the blocks' and head's matrices only, betas (0.9, 0.99)),
warm-up + cosine schedule and gradient clipping at 1.0.

  --train          train like `char_gpt` and write its CSV (iter,train_loss,val_loss,ms_per_iter)
  --time           time training iterations, eager and torch.compile, and print
                   RESULT width=<C> eager_ms=<median> compiled_ms=<median or -1> eager_ops=<n>
                   (eager_ops: the ATen operators one eager step runs, from torch.profiler: the CPU's
                   counterpart of kernel launches)
"""
import argparse
import math
import os
import sys
import time

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def read_corpus(path):
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path))
        files = [f for f in files if os.path.isfile(f) and not os.path.islink(f) and not f.endswith(".dat")]
    else:
        files = [path]
    return b"".join(open(f, "rb").read() for f in files)


def get_lr(t, lr, min_lr, warmup, decay):
    if t < warmup:
        return lr * (t + 1) / (warmup + 1)
    if t > decay or decay == warmup:
        return min_lr
    r = (t - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (lr - min_lr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/games/fortunes")
    p.add_argument("--train", action="store_true")
    p.add_argument("--time", action="store_true")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--csv", default="")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--widths", default="128", help="--time: n_embd values; --train uses the first")
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--budget", type=float, default=5.0, help="--time: seconds per variant")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-compile", action="store_true")
    a = p.parse_args()

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    text = read_corpus(a.data)
    vocab = sorted(set(text))
    to_id = {b: i for i, b in enumerate(vocab)}
    ids = torch.tensor([to_id[b] for b in text], dtype=torch.long)
    n_train = len(text) * 9 // 10
    train, val = ids[:n_train], ids[n_train:]
    T, B = a.block_size, a.batch_size

    def get_batch(data, rng):
        starts = [rng.next() % (len(data) - T) for _ in range(B)]
        x = torch.stack([data[s:s + T] for s in starts])
        y = torch.stack([data[s + 1:s + T + 1] for s in starts]).reshape(-1)
        return x, y

    class Block(nn.Module):
        def __init__(self, c, h):
            super().__init__()
            self.h = h
            self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
            self.attn, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
            self.fc1, self.fc2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.attn(self.ln1(x)).split(c, dim=2)
            q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(len(vocab), c), nn.Embedding(T, c)
            self.blocks = nn.ModuleList([Block(c, a.n_head) for _ in range(a.n_layer)])
            self.ln_f, self.head = nn.LayerNorm(c), nn.Linear(c, len(vocab))
            for name, prm in self.named_parameters():
                if name.endswith("bias") and "ln" not in name:
                    nn.init.zeros_(prm)
                elif prm.dim() == 2:
                    std = 0.02 / math.sqrt(2 * a.n_layer) if name.endswith(("proj.weight", "fc2.weight")) else 0.02
                    nn.init.normal_(prm, 0.0, std)

        def forward(self, x, y):
            pos = torch.arange(x.shape[1])
            h = self.wte(x) + self.wpe(pos)
            for blk in self.blocks:
                h = blk(h)
            return F.cross_entropy(self.head(self.ln_f(h)).view(-1, len(vocab)), y)

    def make(c):
        torch.manual_seed(a.seed)
        model = GPT(c)
        decay = [q for n, q in model.named_parameters() if q.dim() == 2 and not n.startswith(("wte", "wpe"))]
        rest = [q for n, q in model.named_parameters() if not (q.dim() == 2 and not n.startswith(("wte", "wpe")))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.99))
        return model, opt

    def step(model, opt, x, y):
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        return loss

    widths = [int(w) for w in a.widths.split(",")]
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, vocabulary {len(vocab)}", flush=True)

    if a.train:
        model, opt = make(widths[0])
        warmup = min(a.warmup, a.iters)
        decay = max(a.iters, warmup)

        @torch.no_grad()
        def estimate(salt):
            out = []
            for split, data in enumerate((train, val)):
                rng = SplitMix64(a.seed * 7919 + salt * 2 + split)
                out.append(sum(model(*get_batch(data, rng)).item() for _ in range(a.eval_iters)) / a.eval_iters)
            return out

        csv = open(a.csv, "a") if a.csv else None
        if csv and csv.tell() == 0:
            csv.write("iter,train_loss,val_loss,ms_per_iter\n")
        rng = SplitMix64(a.seed)
        ms = []

        def report(it):
            tr, va = estimate(it)
            m = sum(ms) / len(ms) if ms else 0.0
            print(f"iter {it:5d}: train loss {tr:.4f}, val loss {va:.4f}, {m:.1f} ms/iter", flush=True)
            if csv:
                csv.write(f"{it},{tr},{va},{m}\n")
                csv.flush()
            ms.clear()
            return va

        report(0)
        for it in range(a.iters):
            t0 = time.perf_counter()
            x, y = get_batch(train, rng)
            for g in opt.param_groups:
                g["lr"] = get_lr(it, a.lr, a.min_lr, warmup, decay)
            step(model, opt, x, y).item()
            ms.append((time.perf_counter() - t0) * 1e3)
            if (it + 1) % a.eval_interval == 0 or it + 1 == a.iters:
                va = report(it + 1)
        print(f"final validation loss: {va:.4f}")

    if a.time:
        for c in widths:
            rng = SplitMix64(a.seed)
            batches = [get_batch(train, rng) for _ in range(8)]
            model, opt = make(c)
            results = {}
            variants = [("eager", step)]
            if not a.no_compile:
                variants.append(("compiled", torch.compile(step)))
            for name, fn in variants:
                try:
                    for i in range(3):  # warm-up (compilation)
                        fn(model, opt, *batches[i % 8]).item()
                    times, i, t_end = [], 0, time.perf_counter() + a.budget
                    while time.perf_counter() < t_end or len(times) < 5:
                        t0 = time.perf_counter()
                        fn(model, opt, *batches[i % 8]).item()
                        times.append(time.perf_counter() - t0)
                        i += 1
                    times.sort()
                    results[name] = times[len(times) // 2] * 1e3
                except Exception as e:  # torch.compile needs a C++ compiler and may fail
                    print(f"# {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
                    results[name] = -1
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step(model, opt, *batches[0]).item()
            ops = sum(1 for e in prof.events() if e.name.startswith("aten::") and not e.cpu_children)
            print(f"RESULT width={c} eager_ms={results['eager']:.3f} compiled_ms={results.get('compiled', -1):.3f} "
                  f"eager_ops={ops}", flush=True)


if __name__ == "__main__":
    main()
