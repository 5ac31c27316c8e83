// tools/eval: captions every image of a split with a checkpoint and scores the captions against
// the references: BLEU-1..4, ROUGE-L and CIDEr-D (coco-caption conventions), and for the shapes
// dataset the parsed accuracy (every object's size, colour and shape, and the relation).

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "io/atomic_file.h"
#include "io/captions.h"
#include "io/image.h"
#include "io/shapes_scoring.h"
#include "models/caption_image.h"
#include "models/caption_metrics.h"
#include "models/training.h"

using namespace glimpse;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  cli::Flags flags("eval", "--model CKPT --data DIR [options]   (score captions on a split)");
  flags.option("model", "", "checkpoint written by tools/train (required)");
  flags.option("data", "data/shapes", "COCO-format directory (annotations/captions_<split>*.json; images/<split>/ or <split><year>/)");
  flags.option("split", "test", "split to evaluate");
  flags.option("beam", "0", "beam width (0 = greedy)");
  flags.option("limit", "0", "evaluate only the first N images (0 = all)");
  flags.option("out", "", "write the scores and every caption as JSON here");
  flags.option("device", "cpu", "cpu | cuda");
  flags.option("threads", "0", "CPU threads (0 = all cores)");
  flags.also_exits("; 1 also when some images failed (the others are still scored)");
  return cli::run_tool("eval", [&] {
    flags.parse(argc, argv);
    if (flags.str("model").empty()) throw cli::UsageError("eval: --model CKPT is required (see --help)");
    const Device device = cli::device_from_flags(flags, "eval");
    const int64_t limit = flags.integer("limit", 0);
    const int beam = static_cast<int>(flags.integer("beam", 0, 256));
    const std::string out_path = flags.str("out");
    // Checked now, not after captioning a whole split: only the final write can fail later.
    if (flags.given("out")) cli::require_output_file("eval", "out", out_path);
    const std::string split = flags.str("split");
    CaptionDataset data = read_coco_split(flags.str("data"), split);
    if (limit > 0 && static_cast<int64_t>(data.images.size()) > limit) data.images.resize(limit);

    models::LoadedModel loaded = models::load_captioner(flags.str("model"), device);
    models::Captioner& model = *loaded.model;
    const Tokenizer& tokenizer = *loaded.tokenizer;
    models::DecodeOptions dopt = models::decode_options_for(tokenizer);
    if (beam > 0) {
      dopt.strategy = models::DecodeOptions::Strategy::Beam;
      dopt.beam_size = beam;
    }

    // Shapes scenes carry their ground truth in the annotations file.
    std::map<int64_t, SceneTruth> truth;
    try {
      truth = load_shapes_truth(data.source);
    } catch (const std::exception&) {
      truth.clear();  // not a shapes dataset
    }

    std::vector<std::string> candidates;
    std::vector<std::vector<std::string>> references;
    nlohmann::json per_image = nlohmann::json::array();
    int counts[4] = {0, 0, 0, 0}, correct[4] = {0, 0, 0, 0};
    Generator gen(0);
    int failures = 0;
    for (size_t i = 0; i < data.images.size(); ++i) {
      const CaptionedImage& im = data.images[i];
      std::string caption;
      try {
        caption = models::caption_image(model, tokenizer, read_jpeg(im.path), dopt, gen).text;
      } catch (const std::exception& e) {
        ++failures;
        std::cerr << "error: " << im.path << ": " << e.what() << "\n";
        continue;
      }
      candidates.push_back(caption);
      references.push_back(im.captions);
      nlohmann::json row{{"image_id", im.image_id}, {"file_name", im.file_name}, {"caption", caption}};
      auto it = truth.find(im.image_id);
      if (it != truth.end()) {
        const int n = std::min<int>(3, static_cast<int>(it->second.objects.size()));
        const bool ok = caption_matches_scene(caption, it->second);
        counts[n]++;
        correct[n] += ok;
        counts[0]++;
        correct[0] += ok;
        row["correct"] = ok;
      }
      per_image.push_back(row);
      if ((i + 1) % 50 == 0 || i + 1 == data.images.size())
        std::cerr << "\r  captioned " << i + 1 << "/" << data.images.size() << std::flush;
    }
    std::cerr << "\n";
    // Tokenized and scored as pycocoevalcap does it (all references in one tokenizer call, all
    // candidates in another, in image order).
    CaptionScores s = score_raw_captions(candidates, references);
    std::cout << std::fixed << std::setprecision(4) << "split " << split << ": " << candidates.size()
              << " images (" << (beam > 0 ? "beam " + std::to_string(beam) : std::string("greedy")) << ")\n"
              << format_score_table(s);
    nlohmann::json result{{"split", split},
                          {"images", candidates.size()},
                          {"decoding", beam > 0 ? "beam" : "greedy"},
                          {"bleu", {s.bleu[0], s.bleu[1], s.bleu[2], s.bleu[3]}},
                          {"rouge_l", s.rouge_l},
                          {"cider_d", s.cider_d}};
    if (counts[0] > 0) {
      const char* names[4] = {"all scenes", "one object", "two objects", "three objects"};
      std::cout << "  shapes accuracy (every object's size, colour, shape; relation for two):\n";
      for (int n : {1, 2, 3, 0}) {
        if (counts[n] == 0) continue;
        const double acc = static_cast<double>(correct[n]) / counts[n];
        std::cout << "    " << std::left << std::setw(14) << names[n] << std::right << std::setw(8)
                  << std::setprecision(2) << 100.0 * acc << "%  (" << correct[n] << "/" << counts[n] << ")\n";
        result["shapes_accuracy"][names[n]] = acc;
      }
    }
    result["captions"] = per_image;
    if (flags.given("out")) {
      // Through a synced temporary file: a full disk or a crash leaves the previous scores (or no
      // file), never a truncated one under the final name.
      write_file_atomically(out_path, result.dump(2) + "\n", "eval", FileSync::Durable);
      std::cout << "wrote " << out_path << "\n";
    }
    return failures > 0 ? cli::kExitFailure : cli::kExitSuccess;
  });
}
