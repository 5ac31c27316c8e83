"""The notebook decoder's training step in PyTorch on the CPU: the reference for bench_decoder.

Embedding -> GRU(batch_first; PyTorch's reset-gate placement is Keras's reset_after=True) ->
dot-product attention (bmm + softmax; query = GRU output, value = key = image features) -> Add ->
LayerNorm(eps 1e-3) -> Linear(V) -> cross-entropy with ignore_index=0 (mean over real targets =
Keras's masked sum/sum) -> Adam(lr 1e-3, eps 1e-7).

    python3 bench/decoder_torch.py [--threads N] [--steps 5] [--warmup 2] [--batch 32] ...
                                   [--profile]

--profile then times each layer alone, forward and backward, as bench_decoder --profile does.
"""
import argparse
import sys

import bench_common as common


def make_decoder(vocab, units):
    """The model class is built here so that importing this file does not need torch yet."""
    import torch
    from torch import nn

    class NotebookDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, units)
            self.gru = nn.GRU(units, units, batch_first=True)
            self.layer_norm = nn.LayerNorm(units, eps=1e-3)
            self.output = nn.Linear(units, vocab)

        def forward(self, tokens, features):
            sequence, _ = self.gru(self.embedding(tokens))                  # [B, T, U]
            scores = torch.bmm(sequence, features.transpose(1, 2))           # [B, T, cells]
            context = torch.bmm(torch.softmax(scores, dim=-1), features)     # [B, T, U]
            return self.output(self.layer_norm(sequence + context))          # [B, T, V]

    return NotebookDecoder()


def time_part(forward, grad_output, leaves, warmup, repeats):
    """Median wall and CPU ms of forward() and of the backward from its output (seeded with
    grad_output, or a scalar loss when None); leaf gradients are dropped between runs."""
    fwd, bwd, fwd_cpu, bwd_cpu = [], [], [], []
    for i in range(warmup + repeats):
        for leaf in leaves:
            leaf.grad = None
        clock = common.Stopwatch()
        out = forward()
        t_forward, c_forward = clock.ms(), clock.cpu_ms()
        out.backward(grad_output)
        if i >= warmup:
            fwd.append(t_forward)
            bwd.append(clock.ms() - t_forward)
            fwd_cpu.append(c_forward)
            bwd_cpu.append(clock.cpu_ms() - c_forward)
    return [common.median(v) for v in (fwd, bwd, fwd_cpu, bwd_cpu)]


def profile_layers(args, model, optimizer, tokens, targets, features):
    """The per-layer breakdown behind --profile (the same parts as bench_decoder --profile)."""
    import torch
    import torch.nn.functional as F

    warmup, repeats = 1, max(3, args.steps)
    shape = (args.batch, args.tokens, args.units)

    def leaf(*size):
        return (torch.rand(*size) * 2 - 1).requires_grad_(True)

    grad_hidden = torch.rand(*shape) * 2 - 1
    gru_input, query, residual, context, normalised = (leaf(*shape) for _ in range(5))
    logits = leaf(args.batch * args.tokens, args.vocab)
    grad_logits = (torch.rand(args.batch, args.tokens, args.vocab) * 2 - 1) * 1e-4
    weights = list(model.parameters())

    def attention(q):
        scores = torch.bmm(q, features.transpose(1, 2))
        return torch.bmm(torch.softmax(scores, dim=-1), features)

    parts = [
        ("embedding (gather / scatter-add)", lambda: model.embedding(tokens), grad_hidden, []),
        ("GRU over 64 steps", lambda: model.gru(gru_input)[0], grad_hidden, [gru_input]),
        ("attention (bmm, softmax, bmm)", lambda: attention(query), grad_hidden, [query]),
        ("add + layer norm", lambda: model.layer_norm(residual + context), grad_hidden,
         [residual, context]),
        ("output Dense (512 -> V)", lambda: model.output(normalised), grad_logits, [normalised]),
        ("masked cross-entropy",
         lambda: F.cross_entropy(logits, targets.reshape(-1), ignore_index=0), None, [logits]),
    ]
    print("\nper-layer profile (pytorch, %d threads): median of %d, each layer alone" % (
        args.threads, repeats))
    print("%-32s %10s %10s %10s %10s %10s" % ("part", "fwd ms", "bwd ms", "total ms", "fwd CPU",
                                              "bwd CPU"))
    total = 0
    for name, forward, grad, leaves in parts:
        f, b, fc, bc = time_part(forward, grad, leaves + weights, warmup, repeats)
        print("%-32s %10.1f %10.1f %10.1f %10.1f %10.1f" % (name, f, b, f + b, fc, bc))
        total += f + b

    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(tokens, features).reshape(-1, args.vocab), targets.reshape(-1),
                    ignore_index=0).backward()
    adam_ms = []
    for _ in range(repeats):
        clock = common.Stopwatch()
        optimizer.step()
        adam_ms.append(clock.ms())
    count = sum(p.numel() for p in weights)
    print("%-32s %10s %10s %10.1f" % ("Adam (%.2fM parameters)" % (count / 1e6), "", "",
                                       common.median(adam_ms)))
    print("%-32s %10s %10s %10.1f" % ("sum of parts", "", "", total + common.median(adam_ms)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=common.default_threads())
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rss_before_model = common.peak_rss_mib()

    model = make_decoder(args.vocab, args.units)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    ids, target_ids = common.caption_batch(args.batch, args.tokens, args.vocab)
    tokens = torch.from_numpy(ids)
    targets = torch.from_numpy(target_ids)
    features = torch.rand(args.batch, 64, args.units)

    forward_ms, backward_ms, adam_ms, step_ms, cpu_ms = [], [], [], [], []
    losses = []
    for i in range(args.warmup + args.steps):
        clock = common.Stopwatch()
        optimizer.zero_grad(set_to_none=True)
        logits = model(tokens, features)
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), targets.reshape(-1), ignore_index=0)
        losses.append(loss.item())
        t_forward = clock.ms()
        loss.backward()
        t_backward = clock.ms()
        optimizer.step()
        t_step = clock.ms()
        if i >= args.warmup:
            forward_ms.append(t_forward)
            backward_ms.append(t_backward - t_forward)
            adam_ms.append(t_step - t_backward)
            step_ms.append(t_step)
            cpu_ms.append(clock.cpu_ms())
    rss_peak = common.peak_rss_mib()

    print("decoder_torch: torch %s, B=%d T=%d V=%d units=%d, threads=%d (intra-op)" % (
        torch.__version__, args.batch, args.tokens, args.vocab, args.units,
        torch.get_num_threads()))
    print("loss: first %.4f, last %.4f; %d warmup + %d timed steps" % (
        losses[0], losses[-1], args.warmup, args.steps))
    common.print_decoder_row(
        "pytorch", args.threads, common.median(step_ms), common.median(forward_ms),
        common.median(backward_ms), common.median(adam_ms), common.median(cpu_ms), rss_peak,
        rss_peak - rss_before_model,
        common.forward_gemm_flops(args.batch, args.tokens, args.vocab, args.units))
    if args.profile:
        profile_layers(args, model, optimizer, tokens, targets, features)


if __name__ == "__main__":
    sys.exit(main())
