// bench_decoder: one training step of the notebook's decoder on the CPU (issue "layers").
//
// The step: tokens [B, T] -> Embedding(V, D) -> GRU(U, return_sequences) -> Attention(query = GRU
// output, value = image features [B, 64, U]) -> Add -> LayerNormalization(eps 1e-3) -> Dense(V)
// -> masked sparse cross-entropy (~20% padding) -> backward -> Adam. The image features are an
// input (already projected), so this measures the decoder alone. bench/decoder_torch.py and
// bench/decoder_keras.py run the same step in PyTorch and Keras with the same padding pattern.
//
//   bench_decoder [--threads N] [--steps 5] [--warmup 2] [--batch 32] [--tokens 64]
//                 [--vocab 20000] [--units 512] [--full-logits] [--profile]
//
// The step computes the loss as glimpse's captioner trains (models::Captioner::loss):
// nn::dense_masked_crossentropy runs the output Dense only on the non-padding rows, with the same
// loss and gradients. --full-logits computes every row's logits first and masks them in the loss,
// as the notebook, PyTorch's and Keras's scripts do: the same arithmetic as theirs.
//
// --profile then times each layer alone, forward and backward (leaf inputs standing in for the
// previous layer's output, a random output gradient), and Adam alone: where a step's time goes.
// bench/decoder_torch.py --profile does the same in PyTorch.
//
// Reports the median ms per step (and its forward / backward / Adam parts), the median process
// CPU time per step (all threads, spin-waits included: at 1 thread it is the step's cost even on a
// loaded machine) and the peak resident memory: getrusage's max RSS at the end, and its growth
// from just before the model was built.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nn/attention.h"
#include "nn/gru.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace {

using glimpse::Tensor;
namespace nn = glimpse::nn;

struct Options {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int steps = 5, warmup = 2;
  int64_t batch = 32, tokens = 64, vocab = 20000, units = 512, grid_cells = 64;
  bool profile = false;
  bool full_logits = false;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> long long {
      if (i + 1 >= argc) throw std::invalid_argument("bench_decoder: " + arg + " needs a value");
      try {
        return std::stoll(argv[++i]);
      } catch (const std::exception&) {
        throw std::invalid_argument("bench_decoder: " + arg + " expects an integer, got '" +
                                    argv[i] + "'");
      }
    };
    if (arg == "--threads") o.threads = static_cast<int>(value());
    else if (arg == "--steps") o.steps = static_cast<int>(value());
    else if (arg == "--warmup") o.warmup = static_cast<int>(value());
    else if (arg == "--batch") o.batch = value();
    else if (arg == "--tokens") o.tokens = value();
    else if (arg == "--vocab") o.vocab = value();
    else if (arg == "--units") o.units = value();
    else if (arg == "--profile") o.profile = true;
    else if (arg == "--full-logits") o.full_logits = true;
    else if (arg == "--help" || arg == "-h") {
      std::printf(
          "bench_decoder [--threads N] [--steps 5] [--warmup 2] [--batch 32] [--tokens 64] "
          "[--vocab 20000] [--units 512] [--full-logits] [--profile]\n");
      std::exit(0);
    } else {
      throw std::invalid_argument("bench_decoder: unknown flag '" + arg + "' (see --help)");
    }
  }
  if (o.threads < 1 || o.steps < 1 || o.warmup < 0 || o.batch < 1 || o.tokens < 2 || o.vocab < 3 ||
      o.units < 1)
    throw std::invalid_argument("bench_decoder: sizes, --threads and --steps must be positive");
  return o;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

// CPU time of every thread of this process so far, in milliseconds.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// The caption batch, shared by the three implementations: caption b holds 39 + (7 b mod 25) real
// tokens (mean 51 of 64: ~20% padding), ids drawn uniformly from [1, V); the target is the input
// shifted left by one with 0 (padding, masked) after the last real token.
void make_batch(const Options& o, std::vector<int32_t>& tokens, std::vector<int32_t>& targets) {
  glimpse::Generator gen(7);
  tokens.assign(static_cast<size_t>(o.batch * o.tokens), 0);
  targets.assign(tokens.size(), 0);
  for (int64_t b = 0; b < o.batch; ++b) {
    const int64_t length = std::min<int64_t>(o.tokens, 39 + (7 * b) % 25);
    for (int64_t t = 0; t < length; ++t)
      tokens[b * o.tokens + t] = 1 + static_cast<int32_t>(gen.below(o.vocab - 1));
    for (int64_t t = 0; t + 1 < length; ++t)
      targets[b * o.tokens + t] = tokens[b * o.tokens + t + 1];
  }
}

// Multiply-add count of the forward GEMMs times 2; training is about 3x that (each forward GEMM
// has two backward GEMMs of the same size).
double forward_gemm_flops(const Options& o) {
  const double rows = static_cast<double>(o.batch * o.tokens), U = static_cast<double>(o.units);
  const double gru =
      2 * rows * U * 3 * U /* input projection */ + 2 * rows * U * 3 * U /* recurrent */;
  const double attention = 2 * 2 * rows * static_cast<double>(o.grid_cells) * U;
  const double output = 2 * rows * U * static_cast<double>(o.vocab);
  return gru + attention + output;
}

struct PartTiming {
  double forward_ms, backward_ms, forward_cpu_ms, backward_cpu_ms;  // medians
};

// Times `forward` (which builds a small graph from leaf tensors) and the backward from its output,
// seeded with `grad_output` (undefined for a scalar loss). `leaves` get their gradients dropped
// between runs so nothing accumulates across repeats.
PartTiming time_part(const std::function<Tensor()>& forward, const Tensor& grad_output,
                     const std::vector<Tensor*>& leaves, int warmup, int repeats) {
  using Clock = std::chrono::steady_clock;
  std::vector<double> fwd, bwd, fwd_cpu, bwd_cpu;
  for (int i = 0; i < warmup + repeats; ++i) {
    for (Tensor* leaf : leaves) leaf->zero_grad();
    const double c0 = process_cpu_ms();
    const auto t0 = Clock::now();
    Tensor out = forward();
    const double c1 = process_cpu_ms();
    const auto t1 = Clock::now();
    if (grad_output.defined()) out.backward(grad_output);
    else out.backward();
    const double c2 = process_cpu_ms();
    const auto t2 = Clock::now();
    if (i < warmup) continue;
    fwd.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    bwd.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    fwd_cpu.push_back(c1 - c0);
    bwd_cpu.push_back(c2 - c1);
  }
  return {median(fwd), median(bwd), median(fwd_cpu), median(bwd_cpu)};
}

void print_part(const char* name, const PartTiming& t) {
  std::printf("%-32s %10.1f %10.1f %10.1f %10.1f %10.1f\n", name, t.forward_ms, t.backward_ms,
              t.forward_ms + t.backward_ms, t.forward_cpu_ms, t.backward_cpu_ms);
}

// The per-layer breakdown behind --profile.
void profile_layers(const Options& o, nn::Embedding& embedding, nn::GRU& gru,
                    nn::Attention& attention, nn::LayerNormalization& layer_norm,
                    nn::Dense& output_dense, nn::Adam& adam, const Tensor& tokens,
                    const Tensor& targets, const Tensor& features) {
  glimpse::Generator gen(11);
  const int warmup = 1, repeats = std::max(3, o.steps);
  const glimpse::Shape hidden{o.batch, o.tokens, o.units};
  auto leaf = [&](const glimpse::Shape& shape) {
    Tensor t = glimpse::random_uniform(shape, -1.0, 1.0, gen);
    t.set_requires_grad(true);
    return t;
  };
  Tensor grad_hidden = glimpse::random_uniform(hidden, -1.0, 1.0, gen);
  Tensor gru_input = leaf(hidden), query = leaf(hidden), residual = leaf(hidden),
         context = leaf(hidden), normalised = leaf(hidden);
  Tensor logits = leaf({o.batch, o.tokens, o.vocab});
  Tensor grad_logits = glimpse::random_uniform({o.batch, o.tokens, o.vocab}, -1e-4, 1e-4, gen);
  std::vector<Tensor*> weights;
  for (const nn::Module* m :
       std::vector<const nn::Module*>{&embedding, &gru, &layer_norm, &output_dense})
    for (const nn::NamedTensor& p : m->named_parameters(true)) weights.push_back(p.tensor);
  auto with_weights = [&](std::vector<Tensor*> leaves) {
    leaves.insert(leaves.end(), weights.begin(), weights.end());
    return leaves;
  };

  std::printf("\nper-layer profile (glimpse, %d threads): median of %d, each layer alone\n",
              o.threads, repeats);
  std::printf("%-32s %10s %10s %10s %10s %10s\n", "part", "fwd ms", "bwd ms", "total ms", "fwd CPU",
              "bwd CPU");
  double total = 0;
  auto run = [&](const char* name, const std::function<Tensor()>& forward, const Tensor& grad,
                 std::vector<Tensor*> leaves) {
    const PartTiming t = time_part(forward, grad, with_weights(std::move(leaves)), warmup, repeats);
    print_part(name, t);
    total += t.forward_ms + t.backward_ms;
  };
  run("embedding (gather / scatter-add)", [&] { return embedding.forward(tokens); }, grad_hidden,
      {});
  run("GRU over 64 steps", [&] { return gru.forward(gru_input).first; }, grad_hidden, {&gru_input});
  run("attention (bmm, softmax, bmm)", [&] { return attention.forward(query, features).output; },
      grad_hidden, {&query});
  run("add + layer norm", [&] { return layer_norm.forward(glimpse::add(residual, context)); },
      grad_hidden, {&residual, &context});
  run("output Dense (512 -> V)", [&] { return output_dense.forward(normalised); }, grad_logits,
      {&normalised});
  run("masked cross-entropy",
      [&] { return nn::masked_sparse_categorical_crossentropy(logits, targets); }, Tensor(),
      {&logits});

  // Adam over every parameter, with the gradients of one real step in place.
  adam.zero_grad();
  auto [sequence, state] = gru.forward(embedding.forward(tokens));
  Tensor step_logits = output_dense.forward(
      layer_norm.forward(glimpse::add(sequence, attention.forward(sequence, features).output)));
  nn::masked_sparse_categorical_crossentropy(step_logits, targets).backward();
  std::vector<double> adam_ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    adam.step();
    adam_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  int64_t parameter_count = 0;
  for (const Tensor* w : weights) parameter_count += w->numel();
  char adam_label[64];
  std::snprintf(adam_label, sizeof adam_label, "Adam (%.2fM parameters)",
                static_cast<double>(parameter_count) * 1e-6);
  std::printf("%-32s %10s %10s %10.1f\n", adam_label, "", "", median(adam_ms));
  total += median(adam_ms);
  std::printf("%-32s %10s %10s %10.1f\n", "sum of parts", "", "", total);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_options(argc, argv);
    glimpse::parallel::set_num_threads(o.threads);
    const double rss_before_model = peak_rss_mib();

    glimpse::Generator gen(0);
    nn::Embedding embedding("embedding", o.vocab, o.units, gen);
    nn::GRU gru("gru", o.units, o.units, gen);
    nn::Attention attention("attention");
    nn::LayerNormalization layer_norm("layer_normalization", o.units, 1e-3);
    nn::Dense output_dense("output_dense", o.units, o.vocab, gen);
    std::vector<nn::NamedTensor> parameters;
    for (const nn::Module* m :
         std::vector<const nn::Module*>{&embedding, &gru, &layer_norm, &output_dense})
      for (const nn::NamedTensor& p : m->named_parameters(/*trainable_only=*/true))
        parameters.push_back(p);
    nn::Adam adam(parameters, std::make_shared<nn::ConstantLr>(1e-3));

    std::vector<int32_t> token_ids, target_ids;
    make_batch(o, token_ids, target_ids);
    const Tensor tokens = Tensor::from_vector(token_ids, {o.batch, o.tokens});
    const Tensor targets = Tensor::from_vector(target_ids, {o.batch, o.tokens});
    const Tensor features =
        glimpse::random_uniform({o.batch, o.grid_cells, o.units}, 0.0, 1.0, gen);
    int64_t real_targets = 0;
    for (int32_t t : target_ids) real_targets += t != 0;

    using Clock = std::chrono::steady_clock;
    auto ms_since = [](Clock::time_point t0) {
      return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    };
    std::vector<double> forward_ms, backward_ms, adam_ms, step_ms, cpu_ms;
    double first_loss = 0, last_loss = 0;
    for (int i = 0; i < o.warmup + o.steps; ++i) {
      const double cpu0 = process_cpu_ms();
      const auto t0 = Clock::now();
      adam.zero_grad();
      auto [sequence, state] = gru.forward(embedding.forward(tokens));
      nn::AttentionResult context = attention.forward(sequence, features);
      Tensor hidden = layer_norm.forward(glimpse::add(sequence, context.output));
      Tensor loss =
          o.full_logits
              ? nn::masked_sparse_categorical_crossentropy(output_dense.forward(hidden), targets)
              : nn::dense_masked_crossentropy(output_dense, hidden, targets);
      const double loss_value = loss.item();
      const auto t1 = Clock::now();
      loss.backward();
      const auto t2 = Clock::now();
      adam.step();
      const auto t3 = Clock::now();
      if (i == 0) first_loss = loss_value;
      last_loss = loss_value;
      if (i >= o.warmup) {
        forward_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        backward_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
        adam_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
        step_ms.push_back(ms_since(t0));
        cpu_ms.push_back(process_cpu_ms() - cpu0);
      }
    }
    const double rss_peak = peak_rss_mib();
    const double step = median(step_ms);

    std::printf(
        "bench_decoder (glimpse): B=%lld T=%lld V=%lld units=%lld features [%lld, %lld, %lld], "
        "%lld of %lld targets real (%.0f%% padding), threads=%d\n",
        static_cast<long long>(o.batch), static_cast<long long>(o.tokens),
        static_cast<long long>(o.vocab), static_cast<long long>(o.units),
        static_cast<long long>(o.batch), static_cast<long long>(o.grid_cells),
        static_cast<long long>(o.units), static_cast<long long>(real_targets),
        static_cast<long long>(o.batch * o.tokens),
        100.0 * (1.0 - static_cast<double>(real_targets) / static_cast<double>(o.batch * o.tokens)),
        o.threads);
    std::printf("loss: first %.4f, last %.4f (ln V = %.4f); %d warmup + %d timed steps\n",
                first_loss, last_loss, std::log(static_cast<double>(o.vocab)), o.warmup, o.steps);
    std::printf("output Dense: %s (~GFLOP/s below counts every row's logits either way)\n",
                o.full_logits ? "every row's logits, masked in the loss (--full-logits)"
                              : "non-padding rows only (nn::dense_masked_crossentropy)");
    std::printf("%-10s %8s %10s %10s %10s %10s %10s %12s %12s %10s\n", "framework", "threads",
                "step ms", "forward", "backward", "adam", "CPU ms", "peak RSS MiB", "RSS growth",
                "~GFLOP/s");
    std::printf("%-10s %8d %10.1f %10.1f %10.1f %10.1f %10.1f %12.0f %12.0f %10.1f\n", "glimpse",
                o.threads, step, median(forward_ms), median(backward_ms), median(adam_ms),
                median(cpu_ms), rss_peak, rss_peak - rss_before_model,
                3 * forward_gemm_flops(o) / (step * 1e-3) * 1e-9);
    // One machine-readable line for bench/run.sh's side-by-side table.
    std::printf(
        "RESULT framework=glimpse threads=%d step_ms=%.2f cpu_ms=%.2f peak_rss_mib=%.1f "
        "rss_growth_mib=%.1f logits=%s\n",
        o.threads, step, median(cpu_ms), rss_peak, rss_peak - rss_before_model,
        o.full_logits ? "full" : "non_padding");
    if (o.profile)
      profile_layers(o, embedding, gru, attention, layer_norm, output_dense, adam, tokens, targets,
                     features);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
