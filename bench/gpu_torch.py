"""bench_gpu's two measurements in PyTorch eager on a CUDA GPU: the reference for issue "CUDA".

  (a) Inception-ResNet-v2 inference (299x299, eval, inference_mode): images/s at batch 32 and 1;
  (b) the notebook's training step: frozen IRv2 on 32 images (no_grad) -> Linear(1536, 512) + ReLU
      -> the decoder of bench/decoder_torch.py -> cross-entropy(ignore_index=0) -> backward -> Adam.

Rows "fp32" disable TF32 (torch.backends.cuda.matmul.allow_tf32 = False, cudnn.allow_tf32 =
False): like-for-like with glimpse's FP32 kernels. Rows "tf32" allow TF32 tensor cores.
cudnn.benchmark is on (--no-cudnn-benchmark turns it off). TFLOP/s counts GEMM/conv FLOPs only,
as bench_gpu.cpp does. Layout NCHW (--channels-last for NHWC).

    python3 bench/gpu_torch.py [--peak-tflops 67] [--repeats 10] [--train-steps 5]
"""
import argparse
import sys

import bench_common as common
import decoder_torch
import inception_torch


def timed_on_device(synchronize, work, warmup, repeats):
    """Median seconds of `work` between two device synchronisations, after `warmup` calls."""
    for _ in range(warmup):
        work()
    synchronize()
    times = []
    for _ in range(repeats):
        clock = common.Stopwatch()
        work()
        synchronize()
        times.append(clock.ms() / 1e3)
    return common.median(times)


def print_row(precision, what, batch, seconds, gflop, peak):
    tflops = gflop / seconds * 1e-3
    print("%-6s %-34s %6d %10.2f %12.1f %10.2f %9.1f%%" % (
        precision, what, batch, seconds * 1e3, batch / seconds, tflops, 100 * tflops / peak))
    print('RESULT precision=%s bench="%s" batch=%d ms=%.3f images_per_s=%.2f tflops=%.3f' % (
        precision, what, batch, seconds * 1e3, batch / seconds, tflops))


def train_gemm_gflop_beyond_encoder(batch, tokens=64, vocab=20000, units=512, cells=64,
                                    channels=1536):
    feature_dense = 2 * 2 * batch * cells * channels * units  # forward + weight gradient
    return (feature_dense + 3 * common.forward_gemm_flops(batch, tokens, vocab, units, cells)) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peak-tflops", type=float, default=67.0,
                        help="FP32 non-tensor peak: H100 SXM 67, H100 PCIe 51, H200 SXM 67")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--no-cudnn-benchmark", action="store_true")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: a smoke test of this script (use --batch 1 --repeats 1)")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_torch: skipped: no CUDA device")
        return 0
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    device = torch.device(args.device)
    on_gpu = args.device == "cuda"
    synchronize = torch.cuda.synchronize if on_gpu else (lambda: None)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    encoder = inception_torch.build_inception_resnet_v2().eval().to(device, memory_format=fmt)
    for p in encoder.parameters():
        p.requires_grad_(False)
    feature_dense = torch.nn.Linear(1536, 512).to(device)
    decoder = decoder_torch.make_decoder(20000, 512).to(device)
    optimizer = torch.optim.Adam(list(feature_dense.parameters()) + list(decoder.parameters()),
                                 lr=1e-3, eps=1e-7)
    ids, target_ids = common.caption_batch(args.batch, 64, 20000)
    tokens = torch.from_numpy(ids).to(device)
    targets = torch.from_numpy(target_ids).to(device)
    size = inception_torch.IMAGE_SIZE

    def images(batch):
        x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
        return x.contiguous(memory_format=fmt)

    def train_step(x):
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            raw = encoder(x)                                   # [B, 1536, 8, 8]
        raw = raw.flatten(2).transpose(1, 2)                   # [B, 64, 1536]
        features = torch.relu(feature_dense(raw))
        logits = decoder(tokens, features)
        loss = F.cross_entropy(logits.reshape(-1, 20000), targets.reshape(-1), ignore_index=0)
        loss.backward()
        optimizer.step()
        return loss.item()

    print("gpu_torch: torch %s, %s, cudnn.benchmark=%s, layout %s, peak for the %% column %.1f "
          "TFLOP/s" % (torch.__version__, torch.cuda.get_device_name(0) if on_gpu else "CPU",
                       torch.backends.cudnn.benchmark,
                       "NHWC (channels_last)" if args.channels_last else "NCHW", args.peak_tflops))
    print("%-6s %-34s %6s %10s %12s %10s %10s" % ("prec", "benchmark", "batch", "ms", "images/s",
                                                   "TFLOP/s", "of peak"))
    for precision, tf32 in (("fp32", False), ("tf32", True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        for batch in sorted({args.batch, 1}, reverse=True):
            x = images(batch)
            with torch.inference_mode():
                s = timed_on_device(synchronize, lambda: encoder(x), 2,
                               2 * args.repeats if batch == 1 else args.repeats)
            print_row(precision, "IRv2 inference (latency)" if batch == 1 else "IRv2 inference",
                      batch, s, inception_torch.GFLOP_PER_IMAGE * batch, args.peak_tflops)
        x = images(args.batch)
        s = timed_on_device(synchronize, lambda: train_step(x), 2, args.train_steps)
        gflop = (inception_torch.GFLOP_PER_IMAGE * args.batch
                 + train_gemm_gflop_beyond_encoder(args.batch))
        print_row(precision, "captioner train step (frozen IRv2)", args.batch, s, gflop,
                  args.peak_tflops)
    if on_gpu:
        print("peak memory allocated: %.0f MiB" % (torch.cuda.max_memory_allocated() / 2**20))


if __name__ == "__main__":
    sys.exit(main())
