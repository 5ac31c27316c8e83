"""The training step of `make demo` (the tiny captioner on the shapes dataset) in PyTorch, on the CPU.

The same step as bench/bench_shapes_step.cpp: 32 images 128x128 -> the tiny Inception-ResNet
encoder (bench/inception_torch.py with width / 8, one block of each kind, SAME reductions) ->
Linear(192, 128) + ReLU + a learned position embedding of the 4x4 cells -> each image's features
repeated for its 5 captions -> Embedding(64, 64) -> GRU(128) -> dot-product attention (GRU output
as query, features as value) -> add -> LayerNorm(eps 1e-3) -> Linear(64) -> masked cross-entropy
-> backward -> Adam. Random inputs, train mode (BatchNorm uses batch statistics).

    python3 bench/shapes_step_torch.py [--threads N] [--seconds 6] [--warmup 3]

Prints one line in bench_shapes_step's format: median images/s, ms and process CPU ms per step.
"""
import argparse
import time

import bench_common as common
import inception_torch

IMAGES, CAPTIONS_PER_IMAGE, IMAGE_SIZE = 32, 5, 128
VOCAB, TOKENS, EMBEDDING, UNITS, CELLS, CHANNELS = 64, 24, 64, 128, 16, 192


def build_model():
    import torch
    from torch import nn

    class TinyCaptioner(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = inception_torch.build_inception_resnet_v2(
                width_divisor=8, repeats=(1, 1, 1), valid_reductions=False)
            self.feature_dense = nn.Linear(CHANNELS, UNITS)
            self.positions = nn.Parameter(torch.zeros(CELLS, UNITS))
            self.embedding = nn.Embedding(VOCAB, EMBEDDING)
            self.gru = nn.GRU(EMBEDDING, UNITS, batch_first=True)
            self.layer_norm = nn.LayerNorm(UNITS, eps=1e-3)
            self.output = nn.Linear(UNITS, VOCAB)

        def forward(self, images, tokens):
            grid = self.encoder(images)                                   # [B, 192, 4, 4]
            cells = grid.flatten(2).transpose(1, 2)                       # [B, 16, 192]
            features = torch.relu(self.feature_dense(cells)) + self.positions
            features = features.repeat_interleave(CAPTIONS_PER_IMAGE, dim=0)
            sequence, _ = self.gru(self.embedding(tokens))                # [B*5, T, U]
            scores = torch.bmm(sequence, features.transpose(1, 2))        # [B*5, T, 16]
            context = torch.bmm(torch.softmax(scores, dim=-1), features)  # [B*5, T, U]
            return self.output(self.layer_norm(sequence + context))       # [B*5, T, V]

    return TinyCaptioner()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=common.default_threads())
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = build_model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    images = torch.rand(IMAGES, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    rows = IMAGES * CAPTIONS_PER_IMAGE
    tokens = torch.zeros(rows, TOKENS, dtype=torch.long)
    targets = torch.zeros(rows, TOKENS, dtype=torch.long)
    generator = torch.Generator().manual_seed(7)
    for r in range(rows):  # 6 to 13 real tokens, then padding (masked), as bench_shapes_step
        length = 6 + r % 8
        tokens[r, :length] = torch.randint(1, VOCAB, (length,), generator=generator)
        targets[r, :length - 1] = tokens[r, 1:length]
    mask = (targets != 0).float()

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model(images, tokens)
        losses = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1),
                                                   reduction="none")
        loss = (losses * mask.reshape(-1)).sum() / mask.sum()
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    step_ms, cpu_ms = [], []
    start = time.perf_counter()
    while not step_ms or time.perf_counter() - start < args.seconds:
        watch = common.Stopwatch()
        step()
        step_ms.append(watch.ms())
        cpu_ms.append(watch.cpu_ms())
    ms = common.median(step_ms)
    print(f"pytorch shapes_step threads={args.threads} images_per_s={1000.0 * IMAGES / ms:.1f} "
          f"step_ms={ms:.1f} cpu_ms={common.median(cpu_ms):.1f} steps={len(step_ms)}")


if __name__ == "__main__":
    main()
