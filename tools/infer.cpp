// tools/infer: captions images with a trained checkpoint (greedy, top-k sampling or beam search),
// optionally drawing the attention map of every generated word.

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "io/image.h"
#include "models/attention_map.h"
#include "models/caption_image.h"
#include "models/training.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {
// infer decodes JPEG only (io/image's read_jpeg), so only these names are picked from a directory.
bool is_jpeg_name(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg";
}

// One thing to caption, or to report: `error` says why it is skipped (a directory that cannot be
// listed or holds no JPEG, an entry that cannot be examined). Reported in order with the images,
// so one bad entry costs one error line, not the run.
struct Input {
  std::string path;
  std::string error;
};

void add_directory(const std::string& dir, std::vector<Input>& inputs) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    inputs.push_back({dir, "cannot read the directory (" + ec.message() + ")"});
    return;
  }
  std::vector<Input> found;
  size_t ignored = 0;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (!is_jpeg_name(p)) {
      ++ignored;
      continue;
    }
    // Follows symlinks: a looping or dangling one, or one into a directory that cannot be
    // searched, is reported here instead of aborting the listing.
    std::error_code status_error;
    const fs::file_status st = fs::status(p, status_error);
    if (status_error) found.push_back({p.string(), "cannot examine (" + status_error.message() + ")"});
    else if (fs::is_regular_file(st)) found.push_back({p.string(), ""});
    else if (fs::is_directory(st)) ++ignored;
    else found.push_back({p.string(), "not a regular file"});
  }
  std::sort(found.begin(), found.end(), [](const Input& a, const Input& b) { return a.path < b.path; });
  if (ec) found.push_back({dir, "cannot read the whole directory (" + ec.message() + ")"});
  if (found.empty())
    found.push_back({dir, "no images found (infer reads JPEG files, *.jpg and *.jpeg; " +
                              (ignored == 0 ? std::string("the directory is empty")
                                            : std::to_string(ignored) + " other entr" + (ignored == 1 ? "y" : "ies") +
                                                  " ignored") +
                              ")"});
  inputs.insert(inputs.end(), found.begin(), found.end());
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
  flags.accept_positional();
  flags.also_exits("; 1 also when some images failed (the others are still captioned)");
  return cli::run_tool("infer", [&] {
    flags.parse(argc, argv);
    if (flags.str("model").empty()) throw cli::UsageError("infer: --model CKPT is required (see --help)");
    if (flags.positional().empty()) throw cli::UsageError("infer: give at least one image or directory");
    const Device device = cli::device_from_flags(flags, "infer");
    // Every flag is validated before the model is loaded.
    models::DecodeOptions dopt;  // the tokenizer's ids and length are filled in once it is loaded
    const int beam = static_cast<int>(flags.integer("beam", 0, 256));
    if (beam > 0 && flags.on("sample")) throw cli::UsageError("infer: choose --beam or --sample, not both");
    if (beam > 0) {
      dopt.strategy = models::DecodeOptions::Strategy::Beam;
      dopt.beam_size = beam;
    } else if (flags.on("sample")) {
      dopt.strategy = models::DecodeOptions::Strategy::Sample;
      dopt.top_k = static_cast<int>(flags.integer("top-k", 1, 1000000));
      dopt.temperature = flags.number("temperature", 1e-6, 1e6);
    }
    const int max_len = flags.given("max-len") ? static_cast<int>(flags.integer("max-len", 1, 4096)) : 0;
    Generator gen(static_cast<uint64_t>(flags.integer("seed", 0)));
    if (!flags.str("attention-map").empty())
      cli::require_output_file("infer", "attention-map", flags.str("attention-map"));

    models::LoadedModel loaded = models::load_captioner(flags.str("model"), device);
    models::Captioner& model = *loaded.model;
    const Tokenizer& tokenizer = *loaded.tokenizer;
    const models::DecodeOptions fitted = models::decode_options_for(tokenizer);
    dopt.start_id = fitted.start_id;
    dopt.end_id = fitted.end_id;
    dopt.max_length = max_len > 0 ? max_len : fitted.max_length;

    std::vector<Input> images;
    for (const std::string& arg : flags.positional()) {
      std::error_code ec;
      if (fs::is_directory(arg, ec)) add_directory(arg, images);
      else images.push_back({arg, ""});  // read_jpeg says what is wrong with it, if anything
    }
    int failures = 0;
    for (size_t i = 0; i < images.size(); ++i) {
      const std::string& path = images[i].path;
      try {
        if (!images[i].error.empty()) throw std::runtime_error(images[i].error);
        const Image image = read_jpeg(path);
        const models::ImageCaption captioned = models::caption_image(model, tokenizer, image, dopt, gen);
        const models::DecodedCaption& c = captioned.decoded;
        const std::string& caption = captioned.text;
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
    return failures > 0 ? cli::kExitFailure : cli::kExitSuccess;
  });
}
