// bench_caption_latency: time to caption ONE image on the CPU — encode (encoder + feature Dense)
// then greedy decoding of 20 tokens, one Captioner::step per token — for the tiny demo model and
// the notebook's full model (Inception-ResNet-v2 at 299x299, vocabulary 20000, 512 units)
// (issue "captioner"). Random weights: the stop token is disabled so every run decodes exactly
// --tokens tokens.
//
//   bench_caption_latency [--threads N] [--tokens 20] [--repeats 3] [--models tiny,full]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "models/captioner.h"
#include "models/decoding.h"
#include "tensor/autograd.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace {

using glimpse::Tensor;
namespace models = glimpse::models;
using Clock = std::chrono::steady_clock;

struct Options {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int tokens = 20;
  int repeats = 3;
  std::vector<std::string> models{"tiny", "full"};
};

int parse_positive(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == text.size() && value > 0) return value;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("bench_caption_latency: " + flag +
                              " expects a positive integer, got '" + text + "'");
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        throw std::invalid_argument("bench_caption_latency: " + arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--threads") o.threads = parse_positive(arg, value());
    else if (arg == "--tokens") o.tokens = parse_positive(arg, value());
    else if (arg == "--repeats") o.repeats = parse_positive(arg, value());
    else if (arg == "--models") {
      o.models.clear();
      std::stringstream in(value());
      std::string name;
      while (std::getline(in, name, ',')) {
        if (name != "tiny" && name != "full")
          throw std::invalid_argument(
              "bench_caption_latency: --models takes tiny and/or full, got '" + name + "'");
        o.models.push_back(name);
      }
    } else if (arg == "--help" || arg == "-h") {
      std::printf(
          "bench_caption_latency [--threads N] [--tokens 20] [--repeats 3] [--models tiny,full]\n");
      std::exit(0);
    } else {
      throw std::invalid_argument("bench_caption_latency: unknown flag '" + arg + "' (see --help)");
    }
  }
  return o;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void bench_model(const std::string& which, const Options& o) {
  const models::CaptionerConfig config = which == "tiny" ? models::CaptionerConfig::tiny_shapes()
                                                         : models::CaptionerConfig::notebook();
  models::Captioner model(config, /*seed=*/1);
  model.eval();
  glimpse::Generator gen(2);
  const Tensor image =
      glimpse::random_uniform({1, config.image_size, config.image_size, 3}, -1.0, 1.0, gen);

  models::DecodeOptions decode;
  decode.strategy = models::DecodeOptions::Strategy::Greedy;
  decode.max_length = o.tokens;
  decode.end_id = -1;  // never produced: always decode max_length tokens

  std::vector<double> encode_ms, decode_ms;
  size_t decoded = 0;
  for (int i = 0; i < o.repeats + 1; ++i) {  // the first run is the warmup
    const auto t0 = Clock::now();
    Tensor features = model.encode(image);
    const double encoded = ms_since(t0);
    const auto t1 = Clock::now();
    models::DecodedCaption caption = models::decode_caption(model, features, decode, gen);
    const double decoding = ms_since(t1);
    decoded = caption.tokens.size();
    if (i > 0) {
      encode_ms.push_back(encoded);
      decode_ms.push_back(decoding);
    }
  }
  const double enc = median(encode_ms), dec = median(decode_ms);
  char description[128];
  std::snprintf(description, sizeof description, "%s (%s %dx%d, V=%lld, U=%lld)", which.c_str(),
                models::to_string(config.encoder).c_str(), config.image_size, config.image_size,
                static_cast<long long>(config.vocab_size), static_cast<long long>(config.units));
  std::printf("%-50s %8d %12.1f %12.1f %10.2f %12.1f\n", description, o.threads, enc, dec,
              dec / static_cast<double>(std::max<size_t>(1, decoded)), enc + dec);
  std::printf("RESULT model=%s threads=%d encode_ms=%.2f decode_ms=%.2f tokens=%zu\n",
              which.c_str(), o.threads, enc, dec, decoded);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_options(argc, argv);
    glimpse::parallel::set_num_threads(o.threads);
    glimpse::NoGradGuard no_grad;
    std::printf(
        "bench_caption_latency (glimpse): one image, encode + greedy decode of %d tokens, "
        "median of %d runs after 1 warmup\n",
        o.tokens, o.repeats);
    std::printf("%-50s %8s %12s %12s %10s %12s\n", "model", "threads", "encode ms", "decode ms",
                "ms/token", "total ms");
    for (const std::string& which : o.models) bench_model(which, o);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
