// Checking a caption against a "shapes" scene: the parser that reads object phrases and relations
// back out of a caption, and the "did the model learn it" accuracy rule of the shapes reference.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/shapes_dataset.h"

namespace glimpse {

// An object phrase "<size> <colour> <shape>". A phrase with a word missing or out of order still
// produces an object, with the missing fields left empty, so it can never match a real object.
struct ParsedObject {
  std::string size, colour, shape;
  bool operator==(const ParsedObject&) const = default;
  auto operator<=>(const ParsedObject&) const = default;
};

struct ParsedCaption {
  std::vector<ParsedObject> objects;
  // relations[i] is what the words between objects[i] and objects[i + 1] say: "a X to the left of a Y"
  // gives LeftOf, "a X and a Y" gives nothing, and conflicting words give nothing either.
  std::vector<std::optional<Relation>> relations;
};

// Lower-cases the caption, treats anything but letters and digits as a word break (so punctuation
// and tokens such as "<end>" are harmless) and reads object phrases and relation words in order.
ParsedCaption parse_shapes_caption_full(const std::string& caption);
std::vector<ParsedObject> parse_shapes_caption(const std::string& caption);

// Scene truth of every image of one annotations file (captions_<split>.json), keyed by image id.
std::map<int64_t, SceneTruth> load_shapes_truth(const std::string& annotations_json_path);

// True when the caption names exactly the scene's objects (size, colour and shape of each, compared
// as a multiset, no extra or incomplete objects) and, for two-object scenes, states the true
// relation between them in either direction ("A left of B" == "B right of A"); "A and B" states no
// relation and so does not pass for a two-object scene. Relations are not required for one- or
// three-object scenes and are then ignored.
bool caption_matches_scene(const std::string& caption, const SceneTruth& truth);

}  // namespace glimpse
