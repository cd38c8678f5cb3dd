"""bench/torch_timing.py — how the PyTorch peers time a call, the protocol of bench/common.hpp:
untimed warm-up calls, one calibration call that picks `inner` (back-to-back calls per sample, so
that a sample lasts >= 2 ms), then samples until there are >= min_samples and >= budget seconds
of them. Returns the median seconds per call."""
import statistics
import time


def median_seconds(fn, budget, min_samples=7, warmup=3, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(2e-3 / once))
    samples, spent = [], 0.0
    while len(samples) < min_samples or spent < budget:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        t = time.perf_counter() - t0
        samples.append(t / inner)
        spent += t
        if len(samples) > 2000:
            break
    return statistics.median(samples)
