"""torch.matmul GFLOP/s at bench_gemm's matmul shapes: how far Eigen's GEMM (glimpse's CPU GEMM)
is from the BLAS inside the PyTorch wheel (MKL or oneDNN) on this machine.

    python3 bench/gemm_torch.py [--threads 1,2] [--repeats 5] [--long]

Same cells as bench_gemm: median after one warmup, GFLOP/s from wall time and from process CPU
time (all threads). Operands are pre-transposed views where bench_gemm uses tA/tB, so the BLAS
sees the same transpose flags.
"""
import argparse
import sys

import bench_common as common

# (label, M, N, K, trans_a, trans_b): the decoder's GEMMs, as in bench_gemm.cpp.
CASES = [
    ("square", 1024, 1024, 1024, False, False),
    ("GRU input proj", 2048, 1536, 512, False, False),
    ("GRU input proj dX", 2048, 512, 1536, False, True),
    ("GRU input proj dW", 512, 1536, 2048, True, False),
    ("GRU recurrent step", 32, 1536, 512, False, False),
    ("GRU recurrent dh", 32, 512, 1536, False, True),
    ("GRU recurrent dR", 512, 1536, 32, True, False),
    ("output Dense", 2048, 20000, 512, False, False),
    ("output Dense dX", 2048, 512, 20000, False, True),
    ("output Dense dW", 512, 20000, 2048, True, False),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,%d" % common.default_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long", action="store_true", help="adds 2048^3")
    args = parser.parse_args()

    import torch

    cases = list(CASES)
    if args.long:
        cases.insert(1, ("square", 2048, 2048, 2048, False, False))
    threads = sorted({int(t) for t in args.threads.split(",")})
    print("gemm_torch: torch %s, float32, median of %d after 1 warmup; BLAS: %s" % (
        torch.__version__, args.repeats,
        "MKL" if torch.backends.mkl.is_available() else "no MKL (OpenBLAS/oneDNN)"))
    print("%-28s %-22s %3s | %12s %12s" % ("shape", "case", "thr", "wall GF/s", "CPU GF/s"))
    for label, M, N, K, ta, tb in cases:
        a = torch.rand(K, M).t() if ta else torch.rand(M, K)
        b = torch.rand(N, K).t() if tb else torch.rand(K, N)
        out = torch.empty(M, N)
        flops = 2.0 * M * N * K
        shape = "[%d,%d]x[%d,%d]%s%s" % (M, K, K, N, " tA" if ta else "", " tB" if tb else "")
        for t in threads:
            torch.set_num_threads(t)
            torch.matmul(a, b, out=out)
            wall, cpu = [], []
            for _ in range(args.repeats):
                clock = common.Stopwatch()
                torch.matmul(a, b, out=out)
                wall.append(clock.ms() / 1e3)
                cpu.append(clock.cpu_ms() / 1e3)
            print("%-28s %-22s %3d | %12.1f %12.1f" % (
                shape, label, t, flops / common.median(wall) * 1e-9,
                flops / common.median(cpu) * 1e-9))


if __name__ == "__main__":
    sys.exit(main())
