// tools/score: scores an existing COCO results file ([{"image_id": ..., "caption": ...}, ...])
// against COCO-format caption annotations, the way captioning papers report numbers with
// pycocoevalcap: COCO(annotations), loadRes(results), COCOEvalCap with params['image_id'] set to
// the results' images, its PTB tokenizer, then BLEU-1..4, ROUGE-L and CIDEr-D (METEOR and SPICE
// are not computed). tests/test_score_tool.cpp checks the numbers against pycocoevalcap's.
//
// What pycocoevalcap would reject (with an assertion or a Python exception) is refused here with a
// message saying which entry and why, never scored some other way:
//   - a result whose image_id is not among the annotations' images (loadRes: "Results do not
//     correspond to current coco set");
//   - two results for one image: pycocoevalcap keeps both and its BLEU scorer then stops
//     (it asserts one candidate per image); picking one here would report a number pycocoevalcap
//     cannot produce, so the file is refused and the message names both entries;
//   - a result for an image without reference captions (pycocoevalcap's scorers stop on it);
//   - a caption that is not a string, an entry without image_id or caption, an empty results list.
// Images of the annotations that have no result are not scored (pycocoevalcap's evaluation runs
// over the results' images); the summary says how many there were.

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "io/atomic_file.h"
#include "models/caption_metrics.h"

using namespace glimpse;
using nlohmann::json;

namespace {

json read_json(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("score: " + path + ": cannot open the " + what + " file");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw std::runtime_error("score: " + path + ": cannot read the " + what + " file");
  try {
    return json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw std::runtime_error("score: " + path + ": the " + what + " file is not valid JSON (" + e.what() + ")");
  }
}

// Image ids are compared as pycocotools compares them, by value: 42 and "42" are different ids.
// COCO's are integers; strings are accepted too. Other JSON types are refused.
std::string id_key(const json& id, const std::string& where) {
  if (id.is_number_integer() || id.is_string()) return id.dump();
  throw std::runtime_error(where + ": image id " + id.dump() + " is neither an integer nor a string");
}

std::string entry(const std::string& path, size_t index) {
  return "score: " + path + ": entry " + std::to_string(index);
}

}  // namespace

int main(int argc, char** argv) {
  cli::Flags flags("score", "--results RESULTS.json --annotations CAPTIONS.json [--out scores.json]\n"
                            "       (score a COCO results file the way pycocoevalcap does)");
  flags.option("results", "", "COCO results: a JSON array of {\"image_id\": ..., \"caption\": \"...\"} (required)");
  flags.option("annotations", "", "COCO caption annotations: {\"images\": [{\"id\": ...}], \"annotations\": "
                                  "[{\"image_id\": ..., \"caption\": \"...\"}]} (required)");
  flags.option("out", "", "also write the scores, and each image's, as JSON here");
  return cli::run_tool("score", [&] {
    flags.parse(argc, argv);
    const std::string results_path = flags.str("results"), annotations_path = flags.str("annotations");
    if (results_path.empty()) throw cli::UsageError("score: --results RESULTS.json is required (see --help)");
    if (annotations_path.empty()) throw cli::UsageError("score: --annotations CAPTIONS.json is required (see --help)");
    const std::string out_path = flags.str("out");
    if (flags.given("out")) cli::require_output_file("score", "out", out_path);

    // ---- annotations: the images in file order, each image's references in file order ------
    const json annotations = read_json(annotations_path, "annotations");
    const std::string where_annotations = "score: " + annotations_path;
    if (!annotations.is_object() || !annotations.contains("images") || !annotations["images"].is_array() ||
        !annotations.contains("annotations") || !annotations["annotations"].is_array())
      throw std::runtime_error(where_annotations +
                               ": not COCO caption annotations (an object with \"images\" and \"annotations\" arrays)");
    std::vector<std::string> image_order;
    std::map<std::string, json> image_ids;
    for (size_t i = 0; i < annotations["images"].size(); ++i) {
      const json& image = annotations["images"][i];
      const std::string where = where_annotations + ": images[" + std::to_string(i) + "]";
      if (!image.is_object() || !image.contains("id")) throw std::runtime_error(where + " has no \"id\"");
      const std::string key = id_key(image["id"], where);
      if (image_ids.emplace(key, image["id"]).second) image_order.push_back(key);
    }
    std::map<std::string, std::vector<std::string>> references;
    for (size_t i = 0; i < annotations["annotations"].size(); ++i) {
      const json& ann = annotations["annotations"][i];
      const std::string where = where_annotations + ": annotations[" + std::to_string(i) + "]";
      if (!ann.is_object() || !ann.contains("image_id") || !ann.contains("caption"))
        throw std::runtime_error(where + " needs \"image_id\" and \"caption\"");
      if (!ann["caption"].is_string()) throw std::runtime_error(where + ": \"caption\" is not a string");
      references[id_key(ann["image_id"], where)].push_back(ann["caption"].get<std::string>());
    }

    // ---- results: one caption per known image ----------------------------------------------
    const json results = read_json(results_path, "results");
    if (!results.is_array())
      throw std::runtime_error("score: " + results_path + ": results must be a JSON array of {\"image_id\", \"caption\"} objects");
    if (results.empty()) throw std::runtime_error("score: " + results_path + ": no results to score");
    std::map<std::string, std::pair<size_t, std::string>> result_of;  // image -> (entry, caption)
    std::vector<std::string> unknown;
    for (size_t i = 0; i < results.size(); ++i) {
      const json& r = results[i];
      if (!r.is_object() || !r.contains("image_id") || !r.contains("caption"))
        throw std::runtime_error(entry(results_path, i) + " needs \"image_id\" and \"caption\"");
      if (!r["caption"].is_string())
        throw std::runtime_error(entry(results_path, i) + ": \"caption\" is not a string");
      const std::string key = id_key(r["image_id"], entry(results_path, i));
      if (!image_ids.count(key)) {
        unknown.push_back(key);
        continue;
      }
      auto [it, inserted] = result_of.emplace(key, std::make_pair(i, r["caption"].get<std::string>()));
      if (!inserted)
        throw std::runtime_error(entry(results_path, i) + ": image_id " + key + " already has a caption (entry " +
                                 std::to_string(it->second.first) +
                                 "); pycocoevalcap scores one caption per image (its BLEU scorer stops on two), "
                                 "so keep one per image");
    }
    if (!unknown.empty()) {
      std::string list;
      for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", " : "") + unknown[i];
      if (unknown.size() > 5) list += ", ...";
      throw std::runtime_error("score: " + results_path + ": " + std::to_string(unknown.size()) +
                               " result(s) name images that are not in " + annotations_path + " (image_id " + list +
                               "); pycocoevalcap refuses such a file (\"Results do not correspond to current coco set\")");
    }

    std::vector<std::string> scored_keys, candidates;
    std::vector<std::vector<std::string>> reference_lists;
    for (const std::string& key : image_order) {
      auto r = result_of.find(key);
      if (r == result_of.end()) continue;
      auto refs = references.find(key);
      if (refs == references.end())
        throw std::runtime_error(entry(results_path, r->second.first) + ": image_id " + key + " has no reference captions in " +
                                 annotations_path + "; pycocoevalcap cannot score it");
      scored_keys.push_back(key);
      candidates.push_back(r->second.second);
      reference_lists.push_back(refs->second);
    }

    const CaptionScoresPerImage scores = score_raw_captions_per_image(candidates, reference_lists);
    const CaptionScores& s = scores.corpus;
    std::cout << std::fixed << std::setprecision(4) << "scored " << scored_keys.size() << " images (of "
              << image_order.size() << " in " << annotations_path << "; images without a result are not scored)\n"
              << format_score_table(s);
    if (flags.given("out")) {
      json per_image = json::array();
      for (size_t i = 0; i < scored_keys.size(); ++i)
        per_image.push_back({{"image_id", image_ids.at(scored_keys[i])},
                             {"caption", candidates[i]},
                             {"bleu", scores.bleu[i]},
                             {"rouge_l", scores.rouge_l[i]},
                             {"cider_d", scores.cider_d[i]}});
      const json out{{"results", results_path},
                     {"annotations", annotations_path},
                     {"images", scored_keys.size()},
                     {"bleu", s.bleu},
                     {"rouge_l", s.rouge_l},
                     {"cider_d", s.cider_d},
                     {"per_image", per_image}};
      write_file_atomically(out_path, out.dump(2) + "\n", "score", FileSync::Durable);
      std::cout << "wrote " << out_path << "\n";
    }
    return cli::kExitSuccess;
  });
}
