// bench_gpu: the GPU numbers of issue "CUDA".
//   (a) Inception-ResNet-v2 inference (299x299, frozen, no gradients): images/s at batch 32 and 1;
//   (b) the notebook's full training step on the GPU: frozen Inception-ResNet-v2 on 32 images +
//       feature Dense + decoder (Embedding, GRU, Attention, Add, LayerNorm, Dense(20000)) +
//       masked cross-entropy + backward + Adam: images/s.
// Each timed region is bracketed by device_api(device).synchronize(), so it measures finished
// work, not kernel launches. Achieved TFLOP/s counts only the GEMM/conv FLOPs (26.3 GFLOP per
// image forward; the decoder's GEMMs x3 for forward + backward) against --peak-tflops.
//
//   bench_gpu [--device cuda|cpu] [--peak-tflops 67] [--repeats 10] [--train-steps 5]
//             [--train-batch 32] [--skip-train]
//
// Peak FP32 (non-tensor-core) figures from NVIDIA's data sheets: H100 SXM 67 TFLOP/s, H100 PCIe
// 51 TFLOP/s, H200 SXM 67 TFLOP/s (same GH100 compute as H100 SXM; H200 NVL 60). TF32 tensor
// cores: H100/H200 SXM 495 dense. glimpse computes in plain FP32, so 67 is the fair ceiling.
// --device cpu runs the same code on the CPU (a smoke test; use small --train-batch there).
// Without a CUDA device, --device cuda prints "skipped: no CUDA device" and exits 0.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/captioner.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/autograd.h"
#include "tensor/random.h"

namespace {

using glimpse::Device;
using glimpse::Tensor;
namespace models = glimpse::models;
namespace nn = glimpse::nn;
using Clock = std::chrono::steady_clock;

constexpr double kGflopPerImage = 26.3;  // Inception-ResNet-v2 forward at 299x299

struct Options {
  Device device = Device::CUDA;
  double peak_tflops = 67.0;
  int repeats = 10;
  int train_steps = 5;
  int64_t inference_batch = 32;
  int64_t train_batch = 32;
  bool train = true;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("bench_gpu: " + arg + " needs a value");
      return argv[++i];
    };
    auto number = [&](const std::string& text) {
      try {
        size_t used = 0;
        const double v = std::stod(text, &used);
        if (used == text.size() && v > 0) return v;
      } catch (const std::exception&) {
      }
      throw std::invalid_argument("bench_gpu: " + arg + " expects a positive number, got '" + text +
                                  "'");
    };
    if (arg == "--device") {
      const std::string d = value();
      if (d == "cuda") o.device = Device::CUDA;
      else if (d == "cpu") o.device = Device::CPU;
      else throw std::invalid_argument("bench_gpu: --device must be cuda or cpu, got '" + d + "'");
    } else if (arg == "--peak-tflops") o.peak_tflops = number(value());
    else if (arg == "--repeats") o.repeats = static_cast<int>(number(value()));
    else if (arg == "--train-steps") o.train_steps = static_cast<int>(number(value()));
    else if (arg == "--batch") o.inference_batch = static_cast<int64_t>(number(value()));
    else if (arg == "--train-batch") o.train_batch = static_cast<int64_t>(number(value()));
    else if (arg == "--skip-train") o.train = false;
    else if (arg == "--help" || arg == "-h") {
      std::printf(
          "bench_gpu [--device cuda|cpu] [--peak-tflops 67] [--repeats 10] [--train-steps 5]\n"
          "          [--batch 32] [--train-batch 32] [--skip-train]\n");
      std::exit(0);
    } else {
      throw std::invalid_argument("bench_gpu: unknown flag '" + arg + "' (see --help)");
    }
  }
  return o;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Median seconds of `work` between two device synchronisations, after `warmup` untimed calls
// (which also fill the caching allocator and any library workspaces).
template <class Work>
double timed_on_device(Device device, int warmup, int repeats, Work&& work) {
  const glimpse::DeviceApi& api = glimpse::device_api(device);
  for (int i = 0; i < warmup; ++i) work();
  api.synchronize();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    work();
    api.synchronize();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return median(times);
}

void print_row(const char* what, int64_t batch, double seconds, double gflop, const Options& o) {
  const double tflops = gflop / seconds * 1e-3;
  std::printf("%-34s %6lld %10.2f %12.1f %10.2f %9.1f%%\n", what, static_cast<long long>(batch),
              seconds * 1e3, static_cast<double>(batch) / seconds, tflops,
              100.0 * tflops / o.peak_tflops);
  std::printf("RESULT bench=\"%s\" batch=%lld ms=%.3f images_per_s=%.2f tflops=%.3f\n", what,
              static_cast<long long>(batch), seconds * 1e3, static_cast<double>(batch) / seconds,
              tflops);
}

// The caption batch of bench_decoder.cpp: ~20% padding, ids uniform in [1, V).
void caption_batch(int64_t batch, int64_t tokens, int64_t vocab, glimpse::Generator& gen,
                   std::vector<int32_t>& ids, std::vector<int32_t>& targets) {
  ids.assign(static_cast<size_t>(batch * tokens), 0);
  targets.assign(ids.size(), 0);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t length = std::min<int64_t>(tokens, 39 + (7 * b) % 25);
    for (int64_t t = 0; t < length; ++t)
      ids[b * tokens + t] = 1 + static_cast<int32_t>(gen.below(vocab - 1));
    for (int64_t t = 0; t + 1 < length; ++t) targets[b * tokens + t] = ids[b * tokens + t + 1];
  }
}

// 2 x multiply-adds of one training step's GEMMs beyond the encoder: the feature Dense (forward
// and the weight gradient; the frozen encoder needs no input gradient) and the decoder (x3).
double train_gemm_gflop_beyond_encoder(const models::CaptionerConfig& c, int64_t batch,
                                       int64_t cells, int64_t encoder_channels) {
  const double rows = static_cast<double>(batch * c.max_caption_len),
               U = static_cast<double>(c.units);
  const double feature_dense = 2 * 2.0 * static_cast<double>(batch * cells * encoder_channels) * U;
  const double decoder_forward = 2 * rows * static_cast<double>(c.embedding_dim) * 3 * U +
                                 2 * rows * U * 3 * U +
                                 2 * 2 * rows * static_cast<double>(cells) * U +
                                 2 * rows * U * static_cast<double>(c.vocab_size);
  return (feature_dense + 3 * decoder_forward) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_options(argc, argv);
    if (o.device == Device::CUDA && !glimpse::cuda_available()) {
      std::printf("bench_gpu: skipped: no CUDA device\n");
      return 0;
    }
    const models::CaptionerConfig config = models::CaptionerConfig::notebook();
    models::Captioner model(config, /*seed=*/0);  // frozen encoder, as in the notebook
    model.to(o.device);
    glimpse::Generator gen(1);

    std::printf(
        "bench_gpu (glimpse): device %s, FP32, peak for the %% column %.1f TFLOP/s "
        "(--peak-tflops), GEMM/conv FLOPs only\n",
        glimpse::device_name(o.device), o.peak_tflops);
    std::printf("%-34s %6s %10s %12s %10s %10s\n", "benchmark", "batch", "ms", "images/s",
                "TFLOP/s", "of peak");

    // (a) Inference: the encoder alone, no graph.
    {
      glimpse::NoGradGuard no_grad;
      model.eval();
      std::vector<int64_t> batches{o.inference_batch};
      if (o.inference_batch != 1) batches.push_back(1);
      for (int64_t batch : batches) {
        Tensor images = glimpse::random_uniform({batch, config.image_size, config.image_size, 3},
                                                -1.0, 1.0, gen)
                            .to(o.device);
        const int repeats = batch == 1 ? 2 * o.repeats : o.repeats;
        const double s = timed_on_device(o.device, 2, repeats,
                                         [&] { Tensor f = model.encoder->forward(images); });
        print_row(batch == 1 ? "IRv2 inference (latency)" : "IRv2 inference", batch, s,
                  kGflopPerImage * static_cast<double>(batch), o);
      }
    }

    // (b) The full training step: images -> frozen encoder -> feature Dense -> decoder -> loss.
    if (o.train) {
      model.train();
      std::vector<nn::NamedTensor> trainable = model.named_parameters(/*trainable_only=*/true);
      nn::Adam adam(trainable, std::make_shared<nn::ConstantLr>(1e-3));
      const int64_t B = o.train_batch;
      std::vector<int32_t> ids, target_ids;
      caption_batch(B, config.max_caption_len, config.vocab_size, gen, ids, target_ids);
      const Tensor tokens = Tensor::from_vector(ids, {B, config.max_caption_len}).to(o.device);
      const Tensor targets =
          Tensor::from_vector(target_ids, {B, config.max_caption_len}).to(o.device);
      const Tensor images =
          glimpse::random_uniform({B, config.image_size, config.image_size, 3}, -1.0, 1.0, gen)
              .to(o.device);
      double last_loss = 0;
      const double s = timed_on_device(o.device, 2, o.train_steps, [&] {
        adam.zero_grad();
        Tensor logits = model.decode(model.encode(images), tokens);
        Tensor loss = nn::masked_sparse_categorical_crossentropy(logits, targets);
        loss.backward();
        adam.step();
        last_loss = loss.item();  // a host read: also a synchronisation point, as in a real loop
      });
      const double gflop = kGflopPerImage * static_cast<double>(B) +
                           train_gemm_gflop_beyond_encoder(config, B, model.grid_cells(),
                                                           model.encoder->output_channels());
      print_row("captioner train step (frozen IRv2)", B, s, gflop, o);
      std::printf("train loss after %d steps: %.4f (%zu trainable tensors)\n", 2 + o.train_steps,
                  last_loss, trainable.size());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
