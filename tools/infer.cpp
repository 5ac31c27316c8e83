// tools/infer: captions images with a trained checkpoint (greedy, top-k sampling or beam search),
// optionally drawing the attention map of every generated word.

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "io/batches.h"
#include "io/image.h"
#include "models/attention_map.h"
#include "models/decoding.h"
#include "models/training.h"
#include "tensor/autograd.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {
bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg";
}

std::string map_path_for(const std::string& base, size_t index, size_t total) {
  if (total == 1) return base;
  fs::path p(base);
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(index + 1) + p.extension().string()))
      .string();
}
}  // namespace

int main(int argc, char** argv) {
  cli::Flags flags("infer", "--model CKPT [options] IMAGE|DIR ...   (caption JPEG images)");
  flags.option("model", "", "checkpoint written by tools/train (required)");
  flags.flag("json", "print one JSON object per image instead of plain text");
  flags.flag("sample", "top-k sampling (the notebook's decoding) instead of greedy");
  flags.option("top-k", "10", "sampling: keep the k most likely words");
  flags.option("temperature", "1.0", "sampling temperature");
  flags.option("beam", "0", "beam search with this width (0 = off)");
  flags.option("max-len", "", "maximum caption length in tokens (default: the model's)");
  flags.option("attention-map", "", "write attention maps to this PNG (one file per image: -N suffix)");
  flags.option("device", "cpu", "cpu | cuda");
  flags.option("threads", "0", "CPU threads (0 = all cores)");
  flags.option("seed", "0", "sampling seed");
  try {
    flags.parse(argc, argv);
    if (flags.str("model").empty()) throw std::invalid_argument("infer: --model CKPT is required (see --help)");
    if (flags.positional().empty()) throw std::invalid_argument("infer: give at least one image or directory");
    const Device device = cli::device_from_flags(flags, "infer");

    models::LoadedModel loaded = models::load_captioner(flags.str("model"), device);
    models::Captioner& model = *loaded.model;
    const Tokenizer& tokenizer = *loaded.tokenizer;
    models::DecodeOptions dopt;
    dopt.start_id = tokenizer.id_of(kStartMarker);
    dopt.end_id = tokenizer.id_of(kEndMarker);
    dopt.max_length = static_cast<int>(flags.given("max-len") ? flags.integer("max-len", 1, 4096)
                                                              : tokenizer.sequence_length());
    const int beam = static_cast<int>(flags.integer("beam", 0, 256));
    if (beam > 0 && flags.on("sample")) throw std::invalid_argument("infer: choose --beam or --sample, not both");
    if (beam > 0) {
      dopt.strategy = models::DecodeOptions::Strategy::Beam;
      dopt.beam_size = beam;
    } else if (flags.on("sample")) {
      dopt.strategy = models::DecodeOptions::Strategy::Sample;
      dopt.top_k = static_cast<int>(flags.integer("top-k", 1, 1000000));
      dopt.temperature = flags.number("temperature", 1e-6, 1e6);
    }
    Generator gen(static_cast<uint64_t>(flags.integer("seed", 0)));

    std::vector<std::string> images;
    for (const std::string& arg : flags.positional()) {
      if (fs::is_directory(arg)) {
        std::vector<std::string> found;
        for (const auto& e : fs::directory_iterator(arg))
          if (e.is_regular_file() && is_image_file(e.path())) found.push_back(e.path().string());
        std::sort(found.begin(), found.end());
        if (found.empty()) std::cerr << "warning: no .jpg/.jpeg files in " << arg << "\n";
        images.insert(images.end(), found.begin(), found.end());
      } else {
        images.push_back(arg);
      }
    }
    const PixelScaling scaling =
        model.config().pixel_scaling == "unit" ? PixelScaling::Unit : PixelScaling::Inception;
    const int S = model.config().image_size;
    int failures = 0;
    for (size_t i = 0; i < images.size(); ++i) {
      const std::string& path = images[i];
      try {
        Image image = read_jpeg(path);
        std::vector<float> px = preprocess_image(image, S, scaling);
        NoGradGuard no_grad;
        Tensor features = model.encode(Tensor::from_vector(px, {1, S, S, 3}).to(device));
        models::DecodedCaption c = models::decode_caption(model, features, dopt, gen);
        const std::string caption = tokenizer.decode(c.tokens, true);
        std::string map_file;
        if (!flags.str("attention-map").empty()) {
          map_file = map_path_for(flags.str("attention-map"), i, images.size());
          std::vector<std::string> words;
          for (int32_t id : c.tokens) words.push_back(tokenizer.token_of(id));
          write_png(map_file, models::render_attention_map(image, words, c.attention,
                                                           static_cast<int>(model.grid_size())));
        }
        if (flags.on("json")) {
          nlohmann::json j{{"image", path}, {"caption", caption}, {"log_probability", c.log_probability}};
          if (!map_file.empty()) j["attention_map"] = map_file;
          std::cout << j.dump() << "\n";
        } else {
          std::cout << path << "\t" << caption << "\n";
        }
      } catch (const std::exception& e) {
        ++failures;
        if (flags.on("json"))
          std::cout << nlohmann::json{{"image", path}, {"error", e.what()}}.dump() << "\n";
        std::cerr << "error: " << path << ": " << e.what() << "\n";
      }
      std::cout.flush();
    }
    return failures > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
