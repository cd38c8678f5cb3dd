"""bench/train_peer.py — what the PyTorch training-step peers share (bench/mlp_train_torch.py,
bench/cnn_train_torch.py): the arguments, the device and threads, timing eager and torch.compile'd
steps of Adam on cross-entropy over synthetic MNIST-shaped data, counting CUDA kernels per step,
and the RESULT lines the C++ benchmarks parse:
  RESULT batch=<B> eager_ms=<median ms> compiled_ms=<median ms or -1> eager_kernels=<n or -1>
         compiled_kernels=<n or -1>
"""
import argparse

from torch_timing import median_seconds


def run(make_model, default_batches, add_arguments=lambda p: None):
    """make_model(args, torch) -> an nn.Module from (B, 784) images to (B, 10) logits."""
    p = argparse.ArgumentParser()
    p.add_argument("--batches", default=default_batches)
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of timed steps per variant")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-compile", action="store_true")
    add_arguments(p)
    a = p.parse_args()

    import torch
    import torch.nn.functional as F

    if a.device == "cuda" and not torch.cuda.is_available():
        print("ERROR no CUDA device for PyTorch", flush=True)
        return 1
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    print(f"INFO torch {torch.__version__} on {torch.cuda.get_device_name() if a.device == 'cuda' else 'CPU'}"
          f", {torch.get_num_threads()} threads", flush=True)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    def build():
        torch.manual_seed(1)
        model = make_model(a, torch).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(x, y):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    def time_steps(step, x, y):
        # 5 warm-up steps (and, compiled, the captures)
        return median_seconds(lambda: step(x, y), a.budget, min_samples=10, warmup=5, sync=sync) * 1e3

    def count_kernels(step, x, y):
        if a.device != "cuda":
            return -1
        from torch.profiler import ProfilerActivity, profile

        step(x, y)
        sync()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step(x, y)
            sync()
        return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                   and not e.name.startswith("Memcpy") and not e.name.startswith("Memset"))

    for b in [int(s) for s in a.batches.split(",")]:
        g = torch.Generator(device="cpu").manual_seed(b)
        x = torch.rand(b, 784, generator=g).to(dev)
        y = torch.randint(0, 10, (b,), generator=g).to(dev)
        eager = build()
        eager_ms = time_steps(eager, x, y)
        eager_k = count_kernels(eager, x, y)
        comp_ms, comp_k = -1.0, -1
        if not a.no_compile:
            try:
                mode = "reduce-overhead" if a.device == "cuda" else "default"
                compiled = torch.compile(build(), mode=mode)
                comp_ms = time_steps(compiled, x, y)
                comp_k = count_kernels(compiled, x, y)
            except Exception as e:  # a missing compiler toolchain must not hide the eager figures
                print(f"INFO torch.compile failed at batch {b}: {type(e).__name__}: {e}".splitlines()[0], flush=True)
        print(f"RESULT batch={b} eager_ms={eager_ms:.5f} compiled_ms={comp_ms:.5f} eager_kernels={eager_k} "
              f"compiled_kernels={comp_k}", flush=True)
    return 0
