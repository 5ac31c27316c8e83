// bench_shapes_step: the training step of `make demo` (the tiny captioner on the shapes dataset),
// timed without the data loader, on the CPU.
//
// The step is train's: 32 images [128, 128, 3] -> the tiny Inception-ResNet encoder (width / 8,
// one block of each kind) -> Dense(128, relu) + position embedding -> each image's features
// repeated for its 5 captions -> Embedding(64, 64) -> GRU(128) -> Attention -> Add ->
// LayerNormalization -> Dense(64) -> masked cross-entropy -> backward -> Adam. Inputs are random
// (speed does not depend on them). bench/shapes_step_torch.py is the same step in PyTorch;
// bench/contention.sh runs both beside competing processes.
//
//   bench_shapes_step [--threads N] [--seconds 6] [--warmup 3]
//
// Prints one line: the median images/s over the timed steps (each step 32 images), the median ms
// per step, and the process CPU ms per step (all threads). Runs steps for --seconds after --warmup
// untimed ones, so that a run measures the same span of time whatever its speed.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/captioner.h"
#include "models/training.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace {

using glimpse::Tensor;
namespace nn = glimpse::nn;
namespace models = glimpse::models;

struct Options {
  int threads = glimpse::parallel::available_cpus();
  double seconds = 6;
  int warmup = 3;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> double {
      if (i + 1 >= argc) throw std::invalid_argument("bench_shapes_step: " + arg + " needs a value");
      try {
        return std::stod(argv[++i]);
      } catch (const std::exception&) {
        throw std::invalid_argument("bench_shapes_step: " + arg + " expects a number, got '" +
                                    argv[i] + "'");
      }
    };
    if (arg == "--threads") o.threads = static_cast<int>(value());
    else if (arg == "--seconds") o.seconds = value();
    else if (arg == "--warmup") o.warmup = static_cast<int>(value());
    else if (arg == "--help" || arg == "-h") {
      std::printf("bench_shapes_step [--threads N] [--seconds 6] [--warmup 3]\n");
      std::exit(0);
    } else {
      throw std::invalid_argument("bench_shapes_step: unknown flag '" + arg + "' (see --help)");
    }
  }
  if (o.threads < 1 || o.seconds <= 0 || o.warmup < 0)
    throw std::invalid_argument("bench_shapes_step: --threads and --seconds must be positive");
  return o;
}

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

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse_options(argc, argv);
  glimpse::parallel::set_num_threads(o.threads);
  constexpr int64_t kImages = 32, kCaptionsPerImage = 5;
  const models::CaptionerConfig config = models::CaptionerConfig::tiny_shapes();
  models::Captioner model(config, 1);
  model.train(true);
  nn::Adam optimizer(model.named_parameters(/*trainable_only=*/true),
                     std::make_shared<nn::ConstantLr>(1e-3));

  // Pixels in [-1, 1] (the inception scaling); captions of 6 to 13 real tokens of 24, the
  // length range of the shapes captions, then padding (masked).
  glimpse::Generator gen(7);
  const int64_t S = config.image_size, T = config.max_caption_len, V = config.vocab_size;
  std::vector<float> pixels(static_cast<size_t>(kImages * S * S * 3));
  for (float& p : pixels) p = static_cast<float>(gen.uniform() * 2.0 - 1.0);
  const int64_t rows = kImages * kCaptionsPerImage;
  std::vector<int32_t> tokens(static_cast<size_t>(rows * T), 0), targets(tokens.size(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t length = 6 + r % 8;
    for (int64_t t = 0; t < length; ++t)
      tokens[r * T + t] = 1 + static_cast<int32_t>(gen.below(static_cast<uint64_t>(V - 1)));
    for (int64_t t = 0; t + 1 < length; ++t) targets[r * T + t] = tokens[r * T + t + 1];
  }
  const Tensor images = Tensor::from_vector(pixels, {kImages, S, S, 3});
  const Tensor input_ids = Tensor::from_vector(tokens, {rows, T});
  const Tensor target_ids = Tensor::from_vector(targets, {rows, T});

  auto step = [&] {
    optimizer.zero_grad();
    Tensor features = models::repeat_each_row(model.encode(images), kCaptionsPerImage);
    Tensor loss = model.loss(features, input_ids, target_ids);  // what tools/train runs
    loss.backward();
    optimizer.step();
  };
  for (int i = 0; i < o.warmup; ++i) step();
  std::vector<double> step_ms, cpu_ms;
  const auto start = std::chrono::steady_clock::now();
  while (step_ms.empty() ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < o.seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_ms();
    step();
    step_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    cpu_ms.push_back(process_cpu_ms() - c0);
  }
  const double ms = median(step_ms);
  std::printf("glimpse shapes_step threads=%d images_per_s=%.1f step_ms=%.1f cpu_ms=%.1f steps=%zu\n",
              o.threads, 1000.0 * kImages / ms, ms, median(cpu_ms), step_ms.size());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
