// Reading object phrases and relations back out of captions, loading the scene truth stored in the
// shapes annotation files, and the caption-versus-scene accuracy rule.
#include "io/shapes_scoring.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace glimpse {
namespace {

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::string current;
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte)) {
      current += static_cast<char>(std::tolower(byte));
    } else if (!current.empty()) {
      words.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

template <size_t N>
bool is_one_of(const std::string& word, const std::array<std::string_view, N>& names) {
  return std::find(names.begin(), names.end(), word) != names.end();
}

// One word is enough to tell the four relation phrases apart.
std::optional<Relation> relation_word(const std::string& word) {
  if (word == "left") return Relation::LeftOf;
  if (word == "right") return Relation::RightOf;
  if (word == "above") return Relation::Above;
  if (word == "below") return Relation::Below;
  return std::nullopt;
}

// Collects objects and the relation words found between consecutive ones.
class CaptionReader {
 public:
  void read(const std::string& word) {
    if (is_one_of(word, kSizeNames)) {
      finish_object();
      current_.size = word;
      open_ = true;
    } else if (is_one_of(word, kColourNames)) {
      // A colour continues a phrase that has only its size so far; otherwise it starts a new phrase.
      if (open_ && (!current_.colour.empty() || current_.size.empty())) finish_object();
      current_.colour = word;
      open_ = true;
    } else if (is_one_of(word, kShapeNames)) {
      current_.shape = word;
      open_ = true;
      finish_object();
    } else if (auto relation = relation_word(word)) {
      finish_object();
      gap_relations_.push_back(*relation);
    }
  }

  ParsedCaption finish() {
    finish_object();
    return std::move(parsed_);
  }

 private:
  void finish_object() {
    if (!open_) return;
    if (!parsed_.objects.empty()) {
      std::optional<Relation> relation;
      const bool all_agree = std::all_of(gap_relations_.begin(), gap_relations_.end(),
                                         [&](Relation r) { return r == gap_relations_.front(); });
      if (!gap_relations_.empty() && all_agree) relation = gap_relations_.front();
      parsed_.relations.push_back(relation);
    }
    gap_relations_.clear();
    parsed_.objects.push_back(current_);
    current_ = ParsedObject{};
    open_ = false;
  }

  ParsedCaption parsed_;
  ParsedObject current_;
  bool open_ = false;
  std::vector<Relation> gap_relations_;
};

[[noreturn]] void bad_truth(const std::string& path, const std::string& what) {
  throw std::runtime_error("load_shapes_truth: " + path + ": " + what);
}

ParsedObject description_of(const SceneObject& object) { return {object.size, object.colour, object.shape}; }

}  // namespace

ParsedCaption parse_shapes_caption_full(const std::string& caption) {
  CaptionReader reader;
  for (const std::string& word : words_of(caption)) reader.read(word);
  return reader.finish();
}

std::vector<ParsedObject> parse_shapes_caption(const std::string& caption) {
  return parse_shapes_caption_full(caption).objects;
}

std::map<int64_t, SceneTruth> load_shapes_truth(const std::string& annotations_json_path) {
  std::ifstream file(annotations_json_path, std::ios::binary);
  if (!file) bad_truth(annotations_json_path, "cannot open file");
  std::stringstream text;
  text << file.rdbuf();
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& error) {
    bad_truth(annotations_json_path, std::string("invalid JSON (") + error.what() + ")");
  }
  if (!document.contains("images") || !document["images"].is_array())
    bad_truth(annotations_json_path, "no \"images\" array");

  std::map<int64_t, SceneTruth> truths;
  for (const auto& entry : document["images"]) {
    try {
      SceneTruth truth;
      truth.image_id = entry.at("id").get<int64_t>();
      truth.file_name = entry.at("file_name").get<std::string>();
      for (const auto& item : entry.at("objects")) {
        SceneObject object;
        object.shape = item.at("shape").get<std::string>();
        object.colour = item.at("colour").get<std::string>();
        object.size = item.at("size").get<std::string>();
        const auto& box = item.at("bbox");
        object.x = box.at(0).get<int>();
        object.y = box.at(1).get<int>();
        object.width = box.at(2).get<int>();
        object.height = box.at(3).get<int>();
        if (item.contains("rgb")) {
          object.fill = {item["rgb"].at(0).get<uint8_t>(), item["rgb"].at(1).get<uint8_t>(),
                         item["rgb"].at(2).get<uint8_t>()};
        }
        truth.objects.push_back(std::move(object));
      }
      if (entry.contains("relation")) {
        const std::string phrase = entry["relation"].get<std::string>();
        truth.relation = relation_from_phrase(phrase);
        if (!truth.relation)
          bad_truth(annotations_json_path,
                    "image " + std::to_string(truth.image_id) + ": unknown relation \"" + phrase + "\"");
      }
      if (truth.objects.size() == 2 && !truth.relation) {
        bad_truth(annotations_json_path, "image " + std::to_string(truth.image_id) + ": two objects but no relation");
      }
      const int64_t id = truth.image_id;
      if (!truths.emplace(id, std::move(truth)).second) {
        bad_truth(annotations_json_path, "image id " + std::to_string(id) + " appears twice");
      }
    } catch (const nlohmann::json::exception& error) {
      bad_truth(annotations_json_path, std::string("malformed image entry (") + error.what() + ")");
    }
  }
  return truths;
}

bool caption_matches_scene(const std::string& caption, const SceneTruth& truth) {
  const ParsedCaption parsed = parse_shapes_caption_full(caption);
  std::vector<ParsedObject> named = parsed.objects, expected;
  for (const SceneObject& object : truth.objects) expected.push_back(description_of(object));
  std::sort(named.begin(), named.end());
  std::sort(expected.begin(), expected.end());
  if (named != expected) return false;
  if (truth.objects.size() != 2) return true;

  const std::optional<Relation> stated = parsed.relations.at(0);
  if (!stated || !truth.relation) return false;
  const ParsedObject first = description_of(truth.objects[0]), second = description_of(truth.objects[1]);
  // "P <stated> Q" is true when it is the truth's statement or its mirror image.
  if (parsed.objects[0] == first && parsed.objects[1] == second && *stated == *truth.relation) return true;
  return parsed.objects[0] == second && parsed.objects[1] == first && *stated == inverse(*truth.relation);
}

}  // namespace glimpse
