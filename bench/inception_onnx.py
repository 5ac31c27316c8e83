"""Inception-ResNet-v2 inference in ONNX Runtime (CPU): the PyTorch model of
bench/inception_torch.py exported with torch.onnx.export (opset 17, dynamic batch) and run with
intra_op_num_threads = --threads, all graph optimisations on (ORT folds each BatchNorm into its
conv). The exported model is NCHW, like the PyTorch one.

    python3 bench/inception_onnx.py [--threads N] [--batches 1,8] [--repeats 3] [--model PATH]
                                    [--profile]

The exported file is written to a temporary directory unless --model names one to keep/reuse.
--profile then runs the forwards again in a session with ORT's profiler on and prints the time per
forward of each node kind and input shape (Conv with its NCHW input and weight shapes), the most
first, next to which `bench_inception --profile` puts glimpse's convolutions.
"""
import argparse
import os
import sys
import tempfile
import warnings

import bench_common as common
import inception_torch


def export(path):
    import torch

    torch.manual_seed(0)
    model = inception_torch.build_inception_resnet_v2().eval()
    example = torch.rand(1, 3, inception_torch.IMAGE_SIZE, inception_torch.IMAGE_SIZE)
    kwargs = dict(input_names=["images"], output_names=["features"], opset_version=17,
                  dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        # The TorchScript exporter needs no extra package; newer torch defaults to the dynamo one.
        torch.onnx.export(model, (example,), path, dynamo=False, **kwargs)
    except TypeError:  # a torch without the `dynamo` argument: the TorchScript exporter anyway
        torch.onnx.export(model, (example,), path, **kwargs)


def profile_nodes(path, options, images, repeats):
    """Per-node kernel times from ORT's profiler, summed by (op, input shapes), per forward."""
    import json

    import onnxruntime as ort

    options.enable_profiling = True
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session.run(None, {"images": images})  # warm-up, dropped below by counting calls
    for _ in range(repeats):
        session.run(None, {"images": images})
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    totals = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        a = e["args"]
        shapes = [list(s.values())[0] for s in a.get("input_type_shape", [])]
        key = (a.get("op_name", "?"), " ".join("x".join(map(str, s)) for s in shapes[:2]))
        t = totals.setdefault(key, [0.0, 0])
        t[0] += e["dur"] * 1e-3  # microseconds -> ms
        t[1] += 1
    runs = repeats + 1
    total = sum(t[0] for t in totals.values()) / runs
    print("\nprofile (onnxruntime), batch %d: %.1f ms per forward in nodes, %d forwards"
          % (images.shape[0], total, runs))
    print("%-16s %-40s %6s %10s %7s" % ("op", "input, weight (NCHW, OIHW)", "calls", "ms/forward",
                                        "share"))
    for (op, shape), (ms, calls) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print("%-16s %-40s %6d %10.2f %6.1f%%" % (op, shape, calls // runs, ms / runs,
                                                   100 * ms / runs / total))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=common.default_threads())
    parser.add_argument("--batches", type=inception_torch.parse_batches, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed repeats at batch 1; larger batches use fewer (at least 2)")
    parser.add_argument("--model", help="ONNX file to reuse (exported there when missing)")
    parser.add_argument("--profile", action="store_true",
                        help="also print ORT's per-node times (its profiler) per forward")
    args = parser.parse_args()

    import numpy as np
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as scratch:
        path = args.model or os.path.join(scratch, "inception_resnet_v2.onnx")
        if not os.path.exists(path):
            export(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        print("inception_onnx: onnxruntime %s, opset 17, layout NCHW, intra_op_num_threads=%d, "
              "model %.0f MB" % (ort.__version__, args.threads, os.path.getsize(path) / 1e6))
        inception_torch.print_inception_header()
        rng = np.random.default_rng(0)
        for batch in args.batches:
            size = inception_torch.IMAGE_SIZE
            images = rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
            repeats = args.repeats if batch == 1 else max(2, args.repeats // 2)
            ms, cpu_ms = inception_torch.time_forward(
                lambda x: session.run(None, {"images": x}), images, repeats)
            inception_torch.print_inception_row("onnxruntime", "NCHW", batch, args.threads, ms,
                                                cpu_ms)
            if args.profile:
                profile_nodes(path, options, images, repeats)


if __name__ == "__main__":
    sys.exit(main())
