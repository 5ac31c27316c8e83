// Tests of the shapes dataset generator (io/shapes_dataset) and the caption scorer (io/shapes_scoring).
// The generated scenes are checked against the reference's rules re-implemented here from the
// specification (bounding boxes, sizes, relation rule, colours read back from the decoded JPEG), and
// the scorer against hand-written captions.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/shapes_dataset.h"
#include "io/shapes_scoring.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace {

std::string read_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  REQUIRE_MESSAGE(file.good(), "cannot open " << path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) {
    path = fs::temp_directory_path() / ("glimpse_test_shapes_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// Relative path -> contents of every file under root.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) files[fs::relative(entry.path(), root).string()] = read_bytes(entry.path());
  }
  return files;
}

ShapesConfig tiny_config(uint64_t seed, int threads) {
  ShapesConfig config;
  config.train = 20;
  config.val = 5;
  config.test = 5;
  config.seed = seed;
  config.threads = threads;
  return config;
}

// The reference's colour centres, typed in from shared/reference/shapes-dataset.md.
const std::map<std::string, RGB> kReferenceColours = {{"red", {220, 40, 40}},     {"green", {40, 170, 60}},
                                                      {"blue", {40, 70, 220}},    {"yellow", {235, 210, 40}},
                                                      {"purple", {140, 50, 180}}, {"orange", {245, 140, 30}}};

std::string nearest_reference_colour(RGB pixel) {
  std::string best;
  long best_distance = -1;
  for (const auto& [name, centre] : kReferenceColours) {
    const long dr = pixel.r - centre.r, dg = pixel.g - centre.g, db = pixel.b - centre.b;
    const long distance = dr * dr + dg * dg + db * db;
    if (best_distance < 0 || distance < best_distance) best = name, best_distance = distance;
  }
  return best;
}

// The reference's relation rule, written out independently of the generator (y down).
std::string reference_relation(const SceneObject& a, const SceneObject& b) {
  const double dx = (b.x + b.width / 2.0) - (a.x + a.width / 2.0);
  const double dy = (b.y + b.height / 2.0) - (a.y + a.height / 2.0);
  if (std::fabs(dx) >= std::fabs(dy)) return dx > 0 ? "to the left of" : "to the right of";
  return dy > 0 ? "above" : "below";
}

SceneObject object(const std::string& size, const std::string& colour, const std::string& shape, int x, int y) {
  SceneObject o;
  o.size = size;
  o.colour = colour;
  o.shape = shape;
  o.x = x;
  o.y = y;
  o.width = o.height = size == "large" ? 40 : 20;
  return o;
}

SceneTruth scene_of(std::vector<SceneObject> objects) {
  SceneTruth truth;
  truth.image_id = 1;
  truth.objects = std::move(objects);
  if (truth.objects.size() == 2) truth.relation = relation_between(truth.objects[0], truth.objects[1]);
  return truth;
}

}  // namespace

TEST_CASE("the same seed gives byte-identical files whatever the thread count; another seed differs") {
  ScratchDir one_thread("t1"), three_threads("t3"), other_seed("seed");
  generate_shapes_dataset(one_thread.path.string(), tiny_config(1234, 1));
  generate_shapes_dataset(three_threads.path.string(), tiny_config(1234, 3));
  generate_shapes_dataset(other_seed.path.string(), tiny_config(99, 2));
  const auto first = snapshot(one_thread.path), second = snapshot(three_threads.path),
             third = snapshot(other_seed.path);
  // 30 images, 3 annotation files, the stamp: nothing else (in particular no temporary files).
  CHECK(first.size() == 34);
  CHECK(first.count("images/train/000020.jpg") == 1);
  CHECK(first.count("images/val/000005.jpg") == 1);
  CHECK(first.count("annotations/captions_test.json") == 1);
  REQUIRE(first.size() == second.size());
  for (const auto& [name, bytes] : first) {
    CAPTURE(name);
    REQUIRE(second.count(name) == 1);
    CHECK(bytes == second.at(name));
  }
  CHECK(first.at("annotations/captions_train.json") != third.at("annotations/captions_train.json"));
  CHECK(first.at("images/train/000001.jpg") != third.at("images/train/000001.jpg"));
  // Splits are seeded apart: val's first image is not train's.
  CHECK(first.at("images/train/000001.jpg") != first.at("images/val/000001.jpg"));
}

TEST_CASE("a complete dataset with the same config is not regenerated, a different one is") {
  ScratchDir dir("skip");
  int calls = 0;
  const auto count_calls = [&](int, int total) {
    ++calls;
    CHECK(total == 30);
  };
  generate_shapes_dataset(dir.path.string(), tiny_config(5, 2), count_calls);
  CHECK(calls == 30);
  CHECK(shapes_dataset_is_complete(dir.path.string(), tiny_config(5, 2)));
  CHECK(shapes_dataset_is_complete(dir.path.string(), tiny_config(5, 1)));  // threads do not matter
  calls = 0;
  generate_shapes_dataset(dir.path.string(), tiny_config(5, 1), count_calls);
  CHECK(calls == 0);

  // A missing image makes the dataset incomplete again.
  fs::remove(dir.path / "images" / "val" / "000003.jpg");
  CHECK_FALSE(shapes_dataset_is_complete(dir.path.string(), tiny_config(5, 2)));
  generate_shapes_dataset(dir.path.string(), tiny_config(5, 2), count_calls);
  CHECK(calls == 30);

  CHECK_FALSE(shapes_dataset_is_complete(dir.path.string(), tiny_config(6, 2)));
  calls = 0;
  generate_shapes_dataset(dir.path.string(), tiny_config(6, 2), count_calls);
  CHECK(calls == 30);
  CHECK(shapes_dataset_is_complete(dir.path.string(), tiny_config(6, 2)));
}

TEST_CASE("generated scenes follow the reference and their captions parse back to the truth") {
  ScratchDir dir("truth");
  const ShapesConfig config = tiny_config(2024, 2);
  generate_shapes_dataset(dir.path.string(), config);
  int scenes_checked = 0;
  for (const char* split : {"train", "val", "test"}) {
    CAPTURE(split);
    const fs::path annotations = dir.path / "annotations" / (std::string("captions_") + split + ".json");
    const nlohmann::json document = nlohmann::json::parse(read_bytes(annotations));
    const auto truths = load_shapes_truth(annotations.string());
    REQUIRE(document["images"].size() == truths.size());

    std::map<int64_t, std::vector<std::string>> captions;
    std::vector<int64_t> annotation_ids;
    for (const auto& annotation : document["annotations"]) {
      captions[annotation["image_id"].get<int64_t>()].push_back(annotation["caption"]);
      annotation_ids.push_back(annotation["id"].get<int64_t>());
    }
    std::sort(annotation_ids.begin(), annotation_ids.end());
    CHECK(std::adjacent_find(annotation_ids.begin(), annotation_ids.end()) == annotation_ids.end());

    for (const auto& image_entry : document["images"]) {
      const int64_t id = image_entry["id"];
      CAPTURE(id);
      CHECK(image_entry["width"] == 128);
      CHECK(image_entry["height"] == 128);
      const SceneTruth& truth = truths.at(id);
      const std::vector<SceneObject>& objects = truth.objects;
      REQUIRE(objects.size() >= 1);
      REQUIRE(objects.size() <= 3);

      for (size_t i = 0; i < objects.size(); ++i) {
        const SceneObject& o = objects[i];
        CHECK(o.x >= 0);
        CHECK(o.y >= 0);
        CHECK(o.x + o.width <= 128);
        CHECK(o.y + o.height <= 128);
        CHECK(o.width == o.height);
        if (o.size == "small")
          CHECK((o.width >= 16 && o.width <= 24));
        else
          CHECK((o.size == "large" && o.width >= 36 && o.width <= 48));
        for (size_t j = i + 1; j < objects.size(); ++j) {
          const SceneObject& p = objects[j];
          const bool apart = o.x + o.width + 4 <= p.x || p.x + p.width + 4 <= o.x || o.y + o.height + 4 <= p.y ||
                             p.y + p.height + 4 <= o.y;
          CHECK(apart);
        }
      }
      if (objects.size() == 2) {
        REQUIRE(truth.relation.has_value());
        CHECK(std::string(relation_phrase(*truth.relation)) == reference_relation(objects[0], objects[1]));
        const double dx = (objects[1].x + objects[1].width / 2.0) - (objects[0].x + objects[0].width / 2.0);
        const double dy = (objects[1].y + objects[1].height / 2.0) - (objects[0].y + objects[0].height / 2.0);
        CHECK(std::max(std::fabs(dx), std::fabs(dy)) >= 20.0);
      } else {
        CHECK_FALSE(truth.relation.has_value());
      }

      // The picture shows what the truth says: the colour at each object's interior is nearest to the
      // named colour's centre (jitter is +-20 per channel, far below the gaps between centres).
      const Image image =
          read_jpeg((dir.path / "images" / split / image_entry["file_name"].get<std::string>()).string());
      for (const SceneObject& o : objects) {
        // The bounding-box centre, moved down for triangles, whose top half is narrow.
        const int cx = o.x + o.width / 2, cy = o.y + (o.shape == "triangle" ? (o.height * 2) / 3 : o.height / 2);
        CHECK(nearest_reference_colour(image.pixel(cy, cx)) == o.colour);
      }

      const std::vector<std::string>& image_captions = captions[id];
      REQUIRE(image_captions.size() == 5);
      std::vector<ParsedObject> expected;
      for (const SceneObject& o : objects) expected.push_back({o.size, o.colour, o.shape});
      std::sort(expected.begin(), expected.end());
      for (const std::string& caption : image_captions) {
        CAPTURE(caption);
        for (const SceneObject& o : objects) {
          CHECK(caption.find(o.size + " " + o.colour + " " + o.shape) != std::string::npos);
        }
        std::vector<ParsedObject> parsed = parse_shapes_caption(caption);
        std::sort(parsed.begin(), parsed.end());
        CHECK(parsed == expected);
      }
      // Every caption is a correct description, except the "A and B" variant of two-object scenes,
      // which states no relation.
      int matching = 0;
      for (const std::string& caption : image_captions) matching += caption_matches_scene(caption, truth);
      CHECK(matching == (objects.size() == 2 ? 4 : 5));
      ++scenes_checked;
    }
  }
  CHECK(scenes_checked == 30);
}

TEST_CASE("scenes mix one, two and three objects about 40/40/20") {
  const ShapesConfig config;
  int counts[4] = {0, 0, 0, 0};
  const int total = 400;
  for (int i = 0; i < total; ++i) counts[generate_shapes_sample(config, "train", i).scene.objects.size()]++;
  CHECK(counts[1] > total * 0.30);
  CHECK(counts[1] < total * 0.50);
  CHECK(counts[2] > total * 0.30);
  CHECK(counts[2] < total * 0.50);
  CHECK(counts[3] > total * 0.12);
  CHECK(counts[3] < total * 0.28);
}

TEST_CASE("larger images scale the objects") {
  ShapesConfig config;
  config.image_size = 256;
  for (int i = 0; i < 20; ++i) {
    const ShapesSample sample = generate_shapes_sample(config, "val", i);
    CHECK(sample.image.width == 256);
    for (const SceneObject& o : sample.scene.objects) {
      if (o.size == "small")
        CHECK((o.width >= 32 && o.width <= 48));
      else
        CHECK((o.width >= 72 && o.width <= 96));
    }
  }
}

TEST_CASE("relation rule and its phrasing") {
  const SceneObject left = object("small", "red", "circle", 10, 50), right = object("small", "red", "circle", 60, 55);
  CHECK(relation_between(left, right) == Relation::LeftOf);
  CHECK(relation_between(right, left) == Relation::RightOf);
  const SceneObject top = object("small", "red", "circle", 50, 10), bottom = object("small", "red", "circle", 45, 70);
  CHECK(relation_between(top, bottom) == Relation::Above);
  CHECK(relation_between(bottom, top) == Relation::Below);
  // |dx| == |dy| counts as horizontal.
  CHECK(relation_between(object("small", "red", "circle", 0, 0), object("small", "red", "circle", 30, 30)) ==
        Relation::LeftOf);
  for (Relation r : {Relation::LeftOf, Relation::RightOf, Relation::Above, Relation::Below}) {
    CHECK(inverse(inverse(r)) == r);
    CHECK(inverse(r) != r);
    CHECK(relation_from_phrase(relation_phrase(r)) == r);
  }
  CHECK(relation_phrase(Relation::LeftOf) == "to the left of");
  CHECK(relation_phrase(Relation::Below) == "below");
  CHECK_FALSE(relation_from_phrase("near").has_value());
}

TEST_CASE("parse_shapes_caption reads object phrases and relations") {
  const ParsedCaption three =
      parse_shapes_caption_full("a small red circle, a large blue square and a small green triangle");
  REQUIRE(three.objects.size() == 3);
  CHECK(three.objects[0] == ParsedObject{"small", "red", "circle"});
  CHECK(three.objects[1] == ParsedObject{"large", "blue", "square"});
  CHECK(three.objects[2] == ParsedObject{"small", "green", "triangle"});
  CHECK(three.relations.size() == 2);
  CHECK_FALSE(three.relations[0].has_value());

  const ParsedCaption two =
      parse_shapes_caption_full("<start> there is a large Yellow square BELOW a small orange circle. <end>");
  REQUIRE(two.objects.size() == 2);
  CHECK(two.objects[0] == ParsedObject{"large", "yellow", "square"});
  REQUIRE(two.relations.size() == 1);
  CHECK(two.relations[0] == Relation::Below);

  // Incomplete phrases still count as objects, with the missing words empty.
  const std::vector<ParsedObject> partial = parse_shapes_caption("a blue square and a large circle and a small red");
  REQUIRE(partial.size() == 3);
  CHECK(partial[0] == ParsedObject{"", "blue", "square"});
  CHECK(partial[1] == ParsedObject{"large", "", "circle"});
  CHECK(partial[2] == ParsedObject{"small", "red", ""});
  CHECK(parse_shapes_caption("nothing to see here").empty());
}

TEST_CASE("caption_matches_scene: two objects need the right objects and the right relation") {
  const SceneTruth truth =
      scene_of({object("small", "red", "circle", 10, 40), object("large", "blue", "square", 70, 30)});
  REQUIRE(truth.relation == Relation::LeftOf);
  CHECK(caption_matches_scene("a small red circle to the left of a large blue square", truth));
  CHECK(caption_matches_scene("a large blue square to the right of a small red circle", truth));
  CHECK(caption_matches_scene("there is a small red circle to the left of a large blue square <end>", truth));
  CHECK(caption_matches_scene("A Small Red Circle, to the LEFT of a large blue square.", truth));
  CHECK_FALSE(caption_matches_scene("a small red circle and a large blue square", truth));
  CHECK_FALSE(caption_matches_scene("a small red circle to the right of a large blue square", truth));
  CHECK_FALSE(caption_matches_scene("a large blue square to the left of a small red circle", truth));
  CHECK_FALSE(caption_matches_scene("a small red circle above a large blue square", truth));
  CHECK_FALSE(caption_matches_scene("a small green circle to the left of a large blue square", truth));
  CHECK_FALSE(caption_matches_scene("a small red triangle to the left of a large blue square", truth));
  CHECK_FALSE(caption_matches_scene("a large red circle to the left of a large blue square", truth));
  CHECK_FALSE(caption_matches_scene("a small red circle to the left of a blue square", truth));
  CHECK_FALSE(caption_matches_scene("a small red circle", truth));
  CHECK_FALSE(
      caption_matches_scene("a small red circle to the left of a large blue square and a small green triangle", truth));
  CHECK_FALSE(caption_matches_scene("a small red circle to the left of the right of a large blue square", truth));
  CHECK_FALSE(caption_matches_scene("", truth));

  const SceneTruth vertical =
      scene_of({object("large", "purple", "triangle", 40, 5), object("small", "orange", "circle", 50, 80)});
  REQUIRE(vertical.relation == Relation::Above);
  CHECK(caption_matches_scene("a large purple triangle above a small orange circle", vertical));
  CHECK(caption_matches_scene("a small orange circle below a large purple triangle", vertical));
  CHECK_FALSE(caption_matches_scene("a small orange circle above a large purple triangle", vertical));
}

TEST_CASE("caption_matches_scene: one and three objects compare as a multiset, relations ignored") {
  const SceneTruth one = scene_of({object("small", "red", "circle", 10, 40)});
  CHECK(caption_matches_scene("a single small red circle", one));
  CHECK(caption_matches_scene("there is a small red circle on a plain background", one));
  CHECK_FALSE(caption_matches_scene("a small red circle and a small red circle", one));
  CHECK_FALSE(caption_matches_scene("a small red square", one));
  CHECK_FALSE(caption_matches_scene("a red circle", one));

  const SceneTruth three = scene_of({object("small", "red", "circle", 5, 5), object("large", "blue", "square", 60, 5),
                                     object("small", "green", "triangle", 5, 80)});
  CHECK(caption_matches_scene("a small red circle, a large blue square and a small green triangle", three));
  CHECK(
      caption_matches_scene("three shapes: a large blue square, a small green triangle and a small red circle", three));
  CHECK_FALSE(caption_matches_scene("a small red circle and a large blue square", three));
  CHECK_FALSE(caption_matches_scene("a small red circle, a large blue square and a small red circle", three));
  CHECK_FALSE(caption_matches_scene(
      "a small red circle, a large blue square, a small green triangle and a small green triangle", three));
  CHECK_FALSE(caption_matches_scene("a small red circle, a small blue square and a small green triangle", three));
}

TEST_CASE("load_shapes_truth names the file it cannot read") {
  const std::string missing = (fs::temp_directory_path() / "glimpse_no_such_annotations.json").string();
  try {
    load_shapes_truth(missing);
    FAIL("expected an exception");
  } catch (const std::runtime_error& error) {
    CHECK(std::string(error.what()).find(missing) != std::string::npos);
  }
}
