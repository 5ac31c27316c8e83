"""Helpers shared by the Python side of the benchmarks: the caption batch, timing, memory.

The batch pattern matches bench_decoder.cpp: caption b holds 39 + (7 b mod 25) real tokens (mean
51 of 64, ~20% padding); ids are uniform in [1, V); the target is the input shifted left by one
with 0 (padding, masked) after the last real token.
"""
import os
import resource
import statistics
import time


def caption_batch(batch, tokens, vocab, seed=7):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, tokens), dtype=np.int64)
    targets = np.zeros((batch, tokens), dtype=np.int64)
    for b in range(batch):
        length = min(tokens, 39 + (7 * b) % 25)
        ids[b, :length] = rng.integers(1, vocab, size=length)
        targets[b, : length - 1] = ids[b, 1:length]
    return ids, targets


def peak_rss_mib():
    """getrusage's max RSS of this process (Linux reports KiB), as bench_decoder.cpp measures it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def default_threads():
    return len(os.sched_getaffinity(0))


def median(values):
    return statistics.median(values)


class Stopwatch:
    """Wall milliseconds (time.perf_counter) and process CPU milliseconds (time.process_time: every
    thread, as CLOCK_PROCESS_CPUTIME_ID in the C++ benchmarks) since construction."""

    def __init__(self):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()

    def ms(self):
        return (time.perf_counter() - self.start) * 1e3

    def cpu_ms(self):
        return (time.process_time() - self.cpu_start) * 1e3


def forward_gemm_flops(batch, tokens, vocab, units, grid_cells=64):
    """2 x multiply-adds of the decoder's forward GEMMs (training is about 3x this)."""
    rows = batch * tokens
    gru = 2 * rows * units * 3 * units * 2
    attention = 2 * 2 * rows * grid_cells * units
    output = 2 * rows * units * vocab
    return gru + attention + output


def print_decoder_row(framework, threads, step_ms, forward_ms, backward_ms, optimizer_ms, cpu_ms,
                      rss_peak, rss_growth, flops):
    def cell(v):
        return "%10.1f" % v if v is not None else "%10s" % "-"

    print("%-10s %8s %10s %10s %10s %10s %10s %12s %12s %10s" % (
        "framework", "threads", "step ms", "forward", "backward", "adam", "CPU ms",
        "peak RSS MiB", "RSS growth", "~GFLOP/s"))
    print("%-10s %8d %s %s %s %s %s %12.0f %12.0f %10.1f" % (
        framework, threads, cell(step_ms), cell(forward_ms), cell(backward_ms), cell(optimizer_ms),
        cell(cpu_ms), rss_peak, rss_growth, 3 * flops / (step_ms * 1e-3) * 1e-9))
    print("RESULT framework=%s threads=%d step_ms=%.2f cpu_ms=%.2f peak_rss_mib=%.1f "
          "rss_growth_mib=%.1f" % (framework, threads, step_ms, cpu_ms, rss_peak, rss_growth))
