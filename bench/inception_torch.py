"""Inception-ResNet-v2 (include_top=False) written in PyTorch, and its CPU inference benchmark.

The same network as models/inception_resnet_v2.cpp and Keras's application: conv (no bias) +
BatchNorm(eps 1e-3, no gamma in Keras; here affine, which costs nothing measurable) + ReLU units,
the same blocks, the same branch (channel) order, the same VALID strided ops, so a 299x299 image
gives 8x8x1536 features. Layout: NCHW (PyTorch's default), or channels_last with
--channels-last. Eval mode under torch.inference_mode(); random weights (speed does not depend on
them).

    python3 bench/inception_torch.py [--threads N] [--batches 1,8] [--repeats 3] [--channels-last]

bench/inception_onnx.py exports this model to ONNX; bench/gpu_torch.py runs it on a GPU.
"""
import argparse
import sys

import bench_common as common

IMAGE_SIZE = 299
GFLOP_PER_IMAGE = 26.3  # 13.15 G multiply-adds at 299x299 (shared/reference/inception-resnet-v2.md)


def build_inception_resnet_v2(width_divisor=1, repeats=(10, 20, 10), valid_reductions=True):
    """Returns the nn.Module; torch is imported here so the file can be imported without it.

    The defaults are the real network. models/inception_resnet_v2.cpp's InceptionConfig::tiny()
    (the shapes demo's encoder) is width_divisor=8, repeats=(1, 1, 1), valid_reductions=False:
    filter counts divided by 8 (at least 4) and the stem/reduction ops padded SAME, which here is
    symmetric padding 1 (TF pads such a stride-2 op only at the end; same cost, same shapes)."""
    import torch
    from torch import nn

    class ConvBN(nn.Module):
        """Keras's conv2d_bn: Conv2D(no bias) -> BatchNorm(eps 1e-3) -> ReLU (optional)."""

        def __init__(self, cin, cout, kernel, stride=1, padding="same", activation=True):
            super().__init__()
            kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
            # Every strided conv of the network is VALID; stride-1 SAME convs have odd kernels,
            # so symmetric padding k // 2 is exactly TF's SAME.
            pad = (kh // 2, kw // 2) if padding == "same" else (0, 0)
            cin, cout = f(cin) if cin > 3 else cin, f(cout)
            self.conv = nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=pad, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=1e-3)
            self.activation = activation

        def forward(self, x):
            x = self.bn(self.conv(x))
            return torch.relu(x) if self.activation else x

    class Residual(nn.Module):
        """concat(branches) -> 1x1 "up" conv with bias -> x + scale * up -> ReLU (optional)."""

        def __init__(self, branches, mixed, channels, scale, activation=True):
            super().__init__()
            self.branches = nn.ModuleList(nn.Sequential(*b) for b in branches)
            self.up = nn.Conv2d(f(mixed), f(channels), 1, bias=True)
            self.scale = scale
            self.activation = activation

        def forward(self, x):
            mixed = torch.cat([b(x) for b in self.branches], dim=1)
            x = x + self.scale * self.up(mixed)
            return torch.relu(x) if self.activation else x

    def block35(scale=0.17):
        c = 320
        return Residual([[ConvBN(c, 32, 1)],
                         [ConvBN(c, 32, 1), ConvBN(32, 32, 3)],
                         [ConvBN(c, 32, 1), ConvBN(32, 48, 3), ConvBN(48, 64, 3)]],
                        32 + 32 + 64, c, scale)

    def block17(scale=0.10):
        c = 1088
        return Residual([[ConvBN(c, 192, 1)],
                         [ConvBN(c, 128, 1), ConvBN(128, 160, (1, 7)), ConvBN(160, 192, (7, 1))]],
                        192 + 192, c, scale)

    def block8(scale=0.20, activation=True):
        c = 2080
        return Residual([[ConvBN(c, 192, 1)],
                         [ConvBN(c, 192, 1), ConvBN(192, 224, (1, 3)), ConvBN(224, 256, (3, 1))]],
                        192 + 256, c, scale, activation)

    def f(filters):  # the divided filter count (InceptionResNetV2::f)
        return filters if width_divisor == 1 else max(4, int(filters / width_divisor + 0.5))

    red = "valid" if valid_reductions else "same"

    def pool():  # the 3x3 stride-2 max-pools
        return nn.MaxPool2d(3, stride=2, padding=0 if valid_reductions else 1)

    class Concat(nn.Module):
        def __init__(self, *branches):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], dim=1)

    def chain(*layers):
        return nn.Sequential(*layers)

    model = nn.Sequential(
        # Stem: 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35
        ConvBN(3, 32, 3, stride=2, padding=red),
        ConvBN(32, 32, 3, padding=red),
        ConvBN(32, 64, 3),
        pool(),
        ConvBN(64, 80, 1, padding=red),
        ConvBN(80, 192, 3, padding=red),
        pool(),
        # mixed_5b -> 35x35x320; the pool is the network's only padded pool (divisor = real cells).
        Concat(ConvBN(192, 96, 1),
               chain(ConvBN(192, 48, 1), ConvBN(48, 64, 5)),
               chain(ConvBN(192, 64, 1), ConvBN(64, 96, 3), ConvBN(96, 96, 3)),
               chain(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
                     ConvBN(192, 64, 1))),
        *[block35() for _ in range(repeats[0])],
        # mixed_6a -> 17x17x1088
        Concat(ConvBN(320, 384, 3, stride=2, padding=red),
               chain(ConvBN(320, 256, 1), ConvBN(256, 256, 3),
                     ConvBN(256, 384, 3, stride=2, padding=red)),
               pool()),
        *[block17() for _ in range(repeats[1])],
        # mixed_7a -> 8x8x2080
        Concat(chain(ConvBN(1088, 256, 1), ConvBN(256, 384, 3, stride=2, padding=red)),
               chain(ConvBN(1088, 256, 1), ConvBN(256, 288, 3, stride=2, padding=red)),
               chain(ConvBN(1088, 256, 1), ConvBN(256, 288, 3),
                     ConvBN(288, 320, 3, stride=2, padding=red)),
               pool()),
        *[block8() for _ in range(repeats[2] - 1)],
        block8(scale=1.0, activation=False),
        ConvBN(2080, 1536, 1),  # conv_7b -> 8x8x1536
    )
    return model


def count_conv_gflop(model, image_size=IMAGE_SIZE):
    """2 x multiply-adds of every convolution for one image, from the output shapes (a check of
    the 26.3 GFLOP figure and of the network's structure)."""
    import torch

    total = [0]

    def hook(module, inputs, output):
        kh, kw = module.kernel_size
        total[0] += 2 * output.numel() * module.in_channels * kh * kw // module.groups

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, image_size, image_size))
    for h in handles:
        h.remove()
    return total[0] / 1e9, tuple(out.shape)


def keras_parameter_count(model):
    """Parameters + BN moving statistics, without the BN gammas Keras does not have (scale=False):
    54,336,736 for Keras's include_top=False model."""
    params = sum(p.numel() for name, p in model.named_parameters()
                 if not name.endswith("bn.weight"))
    return params + sum(b.numel() for name, b in model.named_buffers() if "running" in name)


def time_forward(run, images, repeats, warmup=1):
    """Median wall and process-CPU milliseconds of run(images) after `warmup` calls."""
    for _ in range(warmup):
        run(images)
    wall, cpu = [], []
    for _ in range(repeats):
        clock = common.Stopwatch()
        run(images)
        wall.append(clock.ms())
        cpu.append(clock.cpu_ms())
    return common.median(wall), common.median(cpu)


def print_inception_header():
    print("%-14s %-14s %6s %8s %12s %12s %12s %12s" % (
        "framework", "layout", "batch", "threads", "ms / batch", "ms / image", "CPU ms/image",
        "GFLOP/s"))


def print_inception_row(framework, layout, batch, threads, batch_ms, batch_cpu_ms):
    per_image, cpu_per_image = batch_ms / batch, batch_cpu_ms / batch
    print("%-14s %-14s %6d %8d %12.1f %12.1f %12.1f %12.1f" % (
        framework, layout, batch, threads, batch_ms, per_image, cpu_per_image,
        GFLOP_PER_IMAGE / per_image * 1e3))
    print("RESULT framework=%s layout=%s batch=%d threads=%d ms_per_image=%.2f "
          "cpu_ms_per_image=%.2f" % (framework, layout, batch, threads, per_image, cpu_per_image))


def parse_batches(text):
    return [int(b) for b in text.split(",") if b]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=common.default_threads())
    parser.add_argument("--batches", type=parse_batches, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed repeats at batch 1; larger batches use fewer (at least 2)")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_inception_resnet_v2().eval()
    gflop, out_shape = count_conv_gflop(model)
    layout = "NHWC (ch-last)" if args.channels_last else "NCHW"
    print("inception_torch: torch %s, %d Keras-countable weights, output %s, conv GFLOP/image "
          "%.2f, layout %s, threads=%d" % (torch.__version__, keras_parameter_count(model),
                                           out_shape, gflop, layout, torch.get_num_threads()))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    print_inception_header()
    for batch in args.batches:
        images = torch.rand(batch, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        repeats = args.repeats if batch == 1 else max(2, args.repeats // 2)
        with torch.inference_mode():
            ms, cpu_ms = time_forward(model, images, repeats)
        print_inception_row("pytorch", layout, batch, args.threads, ms, cpu_ms)


if __name__ == "__main__":
    sys.exit(main())
