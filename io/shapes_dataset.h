// The built-in "shapes" captioning dataset (see shared/reference/shapes-dataset.md): deterministic
// generation of scenes with 1-3 coloured shapes, their JPEG images, five captions each and the ground
// truth needed to score generated captions, written in COCO captions format.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/image.h"

namespace glimpse {

struct ShapesConfig {
  int image_size = 128;
  int train = 6000, val = 500, test = 500;  // images per split
  uint64_t seed = 1234;
  int threads = 0;  // worker threads, 0 = all hardware threads; never changes the output
};

inline constexpr std::array<std::string_view, 3> kShapeNames = {"circle", "square", "triangle"};
inline constexpr std::array<std::string_view, 6> kColourNames = {"red", "green", "blue", "yellow", "purple", "orange"};
inline constexpr std::array<std::string_view, 2> kSizeNames = {"small", "large"};
inline constexpr std::array<std::string_view, 3> kShapesSplits = {"train", "val", "test"};

// "A <relation> B", image y pointing down.
enum class Relation { LeftOf, RightOf, Above, Below };
std::string_view relation_phrase(Relation relation);  // "to the left of", "to the right of", "above", "below"
Relation inverse(Relation relation);                  // A left of B  <=>  B right of A
std::optional<Relation> relation_from_phrase(std::string_view phrase);

struct SceneObject {
  std::string shape, colour, size;
  int x = 0, y = 0, width = 0, height = 0;  // bounding box: top-left corner and size in pixels
  RGB fill;                                 // the jittered colour actually painted
};

// The reference's rule from the bounding-box centres: horizontal when |dx| >= |dy|, else vertical.
Relation relation_between(const SceneObject& a, const SceneObject& b);

struct SceneTruth {
  int64_t image_id = 0;
  std::string file_name;
  std::vector<SceneObject> objects;
  std::optional<Relation> relation;  // objects[0] <relation> objects[1]; set for two-object scenes only
};

struct ShapesSample {
  SceneTruth scene;
  Image image;
  std::vector<std::string> captions;  // always 5
};

// One image of a split ("train", "val" or "test"), index counting from 0. Depends only on the config's
// seed and image_size, the split and the index: this is what makes generation order-independent.
ShapesSample generate_shapes_sample(const ShapesConfig& config, std::string_view split, int index);

// Writes out_dir/images/<split>/NNNNNN.jpg (NNNNNN = image id, from 000001) and
// out_dir/annotations/captions_<split>.json. The JSON is COCO captions format ("images" with id,
// file_name relative to images/<split>/, width, height; "annotations" with id, image_id, caption),
// and each image entry also carries the scene truth: "objects" (shape, colour, size, bbox [x, y, w, h])
// and, for two-object scenes, "relation" (objects[0] <relation> objects[1]).
// Every file goes through a temporary file and a rename; a stamp file holding the config is written
// last, and a call whose stamp matches a complete dataset returns at once. `progress` is called once
// per image (from worker threads, never two at a time) with the count done and the total.
void generate_shapes_dataset(const std::string& out_dir, const ShapesConfig& config,
                             std::function<void(int done, int total)> progress = {});

// True when out_dir holds a complete dataset generated with the same config (threads aside).
bool shapes_dataset_is_complete(const std::string& out_dir, const ShapesConfig& config);

}  // namespace glimpse
