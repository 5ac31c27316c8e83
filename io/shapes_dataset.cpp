// Generator of the "shapes" dataset: a fixed pseudo-random generator seeded per image, scene layout,
// integer-only anti-aliased rasterisation, caption templates and the COCO-format files.
//
// Byte-identical output across runs, machines and thread counts rests on three choices: every image
// draws from its own generator seeded from (seed, split, index); the random numbers come from a
// generator written out here (std::uniform_int_distribution differs between standard libraries); and
// rendering uses integer arithmetic only, so that compiler flags (FMA contraction, -march) cannot
// change a single pixel.
#include "io/shapes_dataset.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "io/atomic_file.h"

namespace glimpse {

namespace {

// Bumped whenever the output for a given config changes, so old datasets are regenerated.
constexpr int kGeneratorVersion = 1;
constexpr int kJpegQuality = 90;

// ------------------------------------------------------------------------------ pseudo-random numbers

// SplitMix64's output function: a strong 64-bit mixer, used to derive independent seeds.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna), seeded through SplitMix64 as its authors recommend.
class Random {
 public:
  explicit Random(uint64_t seed) {
    for (uint64_t& word : state_) {
      seed += 0x9E3779B97F4A7C15ULL;
      word = mix64(seed);
    }
  }

  uint64_t next() {
    const uint64_t result = rotate_left(state_[1] * 5, 7) * 9;
    const uint64_t shifted = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= shifted;
    state_[3] = rotate_left(state_[3], 45);
    return result;
  }

  // Uniform integer in [low, high], without modulo bias: draws past the last whole multiple of the
  // range are rejected and redrawn.
  int uniform(int low, int high) {
    const uint64_t range = static_cast<uint64_t>(static_cast<int64_t>(high) - low) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t draw = next();
    while (draw >= limit) draw = next();
    return low + static_cast<int>(draw % range);
  }

  bool percent(int chance) { return uniform(0, 99) < chance; }

 private:
  static uint64_t rotate_left(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

int split_number(std::string_view split) {
  for (size_t i = 0; i < kShapesSplits.size(); ++i) {
    if (kShapesSplits[i] == split) return static_cast<int>(i);
  }
  throw std::invalid_argument("shapes dataset: unknown split \"" + std::string(split) +
                              "\" (expected train, val or test)");
}

uint64_t image_seed(uint64_t seed, int split, int index) {
  uint64_t h = mix64(seed ^ 0x5348415045530000ULL);  // "SHAPES"
  h = mix64(h ^ static_cast<uint64_t>(split + 1));
  return mix64(h ^ (static_cast<uint64_t>(index) + 1) * 0x9E3779B97F4A7C15ULL);
}

// ---------------------------------------------------------------------------------------- layout

constexpr RGB kColourCentres[] = {{220, 40, 40},  {40, 170, 60},  {40, 70, 220},
                                  {235, 210, 40}, {140, 50, 180}, {245, 140, 30}};
static_assert(std::size(kColourCentres) == kColourNames.size());

// Pixel quantities of the reference are given for 128x128 images and scale with the image size.
struct Geometry {
  int size;
  int scaled(int pixels_at_128) const { return (pixels_at_128 * size + 64) / 128; }
  int small_min() const { return scaled(16); }
  int small_max() const { return scaled(24); }
  int large_min() const { return scaled(36); }
  int large_max() const { return scaled(48); }
  int border() const { return scaled(2); }  // objects stay this far inside the image
  int min_gap() const { return std::max(1, scaled(4)); }
  int min_offset() const { return scaled(20); }  // a stated relation needs |dx| or |dy| this large
  // Our own addition: the dominant axis must win by this margin, so that no two-object scene sits
  // on the diagonal where "left of" and "above" are both nearly true.
  int min_axis_margin() const { return scaled(8); }
};

uint8_t clamp_channel(int value) { return static_cast<uint8_t>(std::clamp(value, 0, 255)); }

bool boxes_keep_gap(const SceneObject& a, const SceneObject& b, int gap) {
  return a.x + a.width + gap <= b.x || b.x + b.width + gap <= a.x || a.y + a.height + gap <= b.y ||
         b.y + b.height + gap <= a.y;
}

// Centre offset from a to b in half pixels, so that odd sizes stay integral.
struct CentreOffset {
  int dx2, dy2;
};
CentreOffset centre_offset(const SceneObject& a, const SceneObject& b) {
  return {(2 * b.x + b.width) - (2 * a.x + a.width), (2 * b.y + b.height) - (2 * a.y + a.height)};
}

bool relation_is_clear(const SceneObject& a, const SceneObject& b, const Geometry& geometry) {
  const CentreOffset offset = centre_offset(a, b);
  const int along = std::max(std::abs(offset.dx2), std::abs(offset.dy2));
  const int across = std::min(std::abs(offset.dx2), std::abs(offset.dy2));
  return along >= 2 * geometry.min_offset() && along - across >= 2 * geometry.min_axis_margin();
}

struct LaidOutScene {
  RGB background;
  std::vector<SceneObject> objects;
};

SceneObject random_object(Random& random, const Geometry& geometry) {
  SceneObject object;
  object.shape = kShapeNames[random.uniform(0, static_cast<int>(kShapeNames.size()) - 1)];
  const int colour = random.uniform(0, static_cast<int>(kColourNames.size()) - 1);
  object.colour = kColourNames[colour];
  const bool large = random.percent(50);
  object.size = kSizeNames[large ? 1 : 0];
  const int side = large ? random.uniform(geometry.large_min(), geometry.large_max())
                         : random.uniform(geometry.small_min(), geometry.small_max());
  object.width = object.height = side;
  const RGB centre = kColourCentres[colour];
  object.fill = {clamp_channel(centre.r + random.uniform(-20, 20)), clamp_channel(centre.g + random.uniform(-20, 20)),
                 clamp_channel(centre.b + random.uniform(-20, 20))};
  return object;
}

bool same_description(const SceneObject& a, const SceneObject& b) {
  return a.shape == b.shape && a.colour == b.colour && a.size == b.size;
}

// Tries random positions for `object` until it lies inside the image, keeps the minimum gap to every
// placed object and, when asked, stands in a clear relation to the first one. False if none worked.
bool try_to_place(Random& random, const Geometry& geometry, const std::vector<SceneObject>& placed,
                  bool needs_clear_relation, SceneObject& object) {
  constexpr int kPlacementTries = 100;
  for (int attempt = 0; attempt < kPlacementTries; ++attempt) {
    object.x = random.uniform(geometry.border(), geometry.size - geometry.border() - object.width);
    object.y = random.uniform(geometry.border(), geometry.size - geometry.border() - object.height);
    const bool apart = std::all_of(placed.begin(), placed.end(), [&](const SceneObject& other) {
      return boxes_keep_gap(object, other, geometry.min_gap());
    });
    if (apart && (!needs_clear_relation || relation_is_clear(placed.front(), object, geometry))) return true;
  }
  return false;
}

// Draws objects until a valid scene comes out: no two objects with the same description (so that
// every caption identifies each object), every one placed by try_to_place, and for two objects a clear
// relation. A scene that cannot be completed is thrown away and drawn again from scratch.
LaidOutScene lay_out_scene(Random& random, const Geometry& geometry) {
  LaidOutScene scene;
  scene.background = {static_cast<uint8_t>(random.uniform(190, 250)), static_cast<uint8_t>(random.uniform(190, 250)),
                      static_cast<uint8_t>(random.uniform(190, 250))};
  const int roll = random.uniform(0, 99);
  const size_t count = roll < 40 ? 1 : roll < 80 ? 2 : 3;
  while (true) {
    scene.objects.clear();
    while (scene.objects.size() < count) {
      SceneObject object = random_object(random, geometry);
      const bool duplicate = std::any_of(scene.objects.begin(), scene.objects.end(),
                                         [&](const SceneObject& other) { return same_description(object, other); });
      const bool needs_clear_relation = count == 2 && scene.objects.size() == 1;
      if (duplicate || !try_to_place(random, geometry, scene.objects, needs_clear_relation, object)) break;
      scene.objects.push_back(object);
    }
    if (scene.objects.size() == count) return scene;
  }
}

// ------------------------------------------------------------------------------------- rendering

// Each pixel is sampled on a 4x4 grid; coordinates are in eighths of a pixel so every sample point
// (pixel + (2k + 1) / 8) and every shape vertex is an integer.
constexpr int kSubsamples = 4;
constexpr int kUnit = 2 * kSubsamples;

bool covers(const SceneObject& object, int64_t sx, int64_t sy) {
  const int64_t left = int64_t{kUnit} * object.x, top = int64_t{kUnit} * object.y;
  const int64_t width = int64_t{kUnit} * object.width, height = int64_t{kUnit} * object.height;
  if (object.shape == "square") {
    return sx >= left && sx < left + width && sy >= top && sy < top + height;
  }
  if (object.shape == "circle") {
    // Twice the coordinates so that the centre is integral even for odd widths.
    const int64_t ddx = 2 * sx - (2 * left + width), ddy = 2 * sy - (2 * top + height);
    return ddx * ddx + ddy * ddy <= width * width;
  }
  // Upright isosceles triangle: apex at the top centre, base along the bottom edge. Inside means on
  // the inner side of both slanted edges (the sign of a 2D cross product) and above the base.
  const int64_t apex_x2 = 2 * left + width, apex_y = top, base_y = top + height;
  if (sy < apex_y || sy >= base_y) return false;
  const int64_t left_edge = (2 * sx - 2 * left) * (apex_y - base_y) - (apex_x2 - 2 * left) * (sy - base_y);
  const int64_t right_edge =
      (apex_x2 - 2 * (left + width)) * (sy - base_y) - (2 * sx - 2 * (left + width)) * (apex_y - base_y);
  return left_edge <= 0 && right_edge <= 0;
}

Image render_scene(const LaidOutScene& scene, const Geometry& geometry, Random& random) {
  Image image = make_image(geometry.size, geometry.size);
  // Mild noise, one value per pixel added to all channels, so the background is not perfectly flat.
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const int noise = random.uniform(-6, 6);
      image.set_pixel(y, x,
                      {clamp_channel(scene.background.r + noise), clamp_channel(scene.background.g + noise),
                       clamp_channel(scene.background.b + noise)});
    }
  }
  constexpr int kSamples = kSubsamples * kSubsamples;
  for (const SceneObject& object : scene.objects) {
    const uint8_t fill[3] = {object.fill.r, object.fill.g, object.fill.b};
    for (int y = object.y; y < object.y + object.height; ++y) {
      for (int x = object.x; x < object.x + object.width; ++x) {
        int covered = 0;
        for (int j = 0; j < kSubsamples; ++j) {
          for (int i = 0; i < kSubsamples; ++i) {
            covered += covers(object, int64_t{kUnit} * x + 2 * i + 1, int64_t{kUnit} * y + 2 * j + 1) ? 1 : 0;
          }
        }
        if (covered == 0) continue;
        uint8_t* pixel = image.at(y, x);
        for (int c = 0; c < 3; ++c) {
          pixel[c] =
              static_cast<uint8_t>((pixel[c] * (kSamples - covered) + fill[c] * covered + kSamples / 2) / kSamples);
        }
      }
    }
  }
  return image;
}

// -------------------------------------------------------------------------------------- captions

std::string phrase(const SceneObject& object) { return "a " + object.size + " " + object.colour + " " + object.shape; }

std::string list_phrases(const std::vector<const SceneObject*>& objects) {
  std::string text;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) text += i + 1 == objects.size() ? " and " : ", ";
    text += phrase(*objects[i]);
  }
  return text;
}

std::vector<std::string> scene_captions(const SceneTruth& scene) {
  const std::vector<SceneObject>& objects = scene.objects;
  if (objects.size() == 1) {
    const std::string core = objects[0].size + " " + objects[0].colour + " " + objects[0].shape;
    return {"a " + core, "there is a " + core, "a " + core + " on a plain background", "one " + core,
            "a single " + core};
  }
  if (objects.size() == 2) {
    const std::string a = phrase(objects[0]), b = phrase(objects[1]);
    const std::string forward(relation_phrase(*scene.relation)), backward(relation_phrase(inverse(*scene.relation)));
    return {a + " " + forward + " " + b, b + " " + backward + " " + a, a + " and " + b,
            "there is " + a + " " + forward + " " + b, b + " is " + backward + " " + a};
  }
  std::vector<const SceneObject*> listed, left_to_right, by_size;
  for (const SceneObject& object : objects) listed.push_back(&object);
  left_to_right = listed;
  std::stable_sort(left_to_right.begin(), left_to_right.end(), [](const SceneObject* p, const SceneObject* q) {
    return 2 * p->x + p->width < 2 * q->x + q->width;
  });
  std::vector<const SceneObject*> right_to_left(left_to_right.rbegin(), left_to_right.rend());
  by_size = left_to_right;
  std::stable_sort(by_size.begin(), by_size.end(), [](const SceneObject* p, const SceneObject* q) {
    return p->size == "large" && q->size != "large";  // large ones first, otherwise left to right
  });
  return {list_phrases(listed), list_phrases(left_to_right), list_phrases(right_to_left), list_phrases(by_size),
          "three shapes: " + list_phrases(left_to_right)};
}

// ------------------------------------------------------------------------------------------ files

std::string image_file_name(int index) {
  char name[32];
  std::snprintf(name, sizeof name, "%06d.jpg", index + 1);
  return name;
}

int split_count(const ShapesConfig& config, int split) {
  return split == 0 ? config.train : split == 1 ? config.val : config.test;
}

nlohmann::ordered_json stamp_json(const ShapesConfig& config) {
  return nlohmann::ordered_json{{"generator_version", kGeneratorVersion},
                                {"image_size", config.image_size},
                                {"train", config.train},
                                {"val", config.val},
                                {"test", config.test},
                                {"seed", config.seed}};
}

std::filesystem::path stamp_path(const std::string& out_dir) {
  return std::filesystem::path(out_dir) / "shapes_dataset_stamp.json";
}

void check_config(const ShapesConfig& config) {
  if (config.image_size < 64 || config.image_size > 4096) {
    throw std::invalid_argument("generate_shapes_dataset: image_size must be in 64..4096, got " +
                                std::to_string(config.image_size));
  }
  if (config.train < 0 || config.val < 0 || config.test < 0 || config.train > 999998 || config.val > 999998 ||
      config.test > 999998) {
    throw std::invalid_argument("generate_shapes_dataset: split sizes must be in 0..999998");
  }
}

nlohmann::ordered_json image_entry(const SceneTruth& scene, int image_size) {
  nlohmann::ordered_json objects = nlohmann::ordered_json::array();
  for (const SceneObject& object : scene.objects) {
    objects.push_back({{"shape", object.shape},
                       {"colour", object.colour},
                       {"size", object.size},
                       {"bbox", {object.x, object.y, object.width, object.height}},
                       {"rgb", {object.fill.r, object.fill.g, object.fill.b}}});
  }
  nlohmann::ordered_json entry{{"id", scene.image_id},
                               {"file_name", scene.file_name},
                               {"width", image_size},
                               {"height", image_size},
                               {"objects", objects}};
  if (scene.relation) entry["relation"] = std::string(relation_phrase(*scene.relation));
  return entry;
}

}  // namespace

std::string_view relation_phrase(Relation relation) {
  switch (relation) {
    case Relation::LeftOf:
      return "to the left of";
    case Relation::RightOf:
      return "to the right of";
    case Relation::Above:
      return "above";
    case Relation::Below:
      return "below";
  }
  throw std::invalid_argument("relation_phrase: invalid relation");
}

Relation inverse(Relation relation) {
  switch (relation) {
    case Relation::LeftOf:
      return Relation::RightOf;
    case Relation::RightOf:
      return Relation::LeftOf;
    case Relation::Above:
      return Relation::Below;
    case Relation::Below:
      return Relation::Above;
  }
  throw std::invalid_argument("inverse: invalid relation");
}

std::optional<Relation> relation_from_phrase(std::string_view phrase) {
  for (Relation relation : {Relation::LeftOf, Relation::RightOf, Relation::Above, Relation::Below}) {
    if (relation_phrase(relation) == phrase) return relation;
  }
  return std::nullopt;
}

Relation relation_between(const SceneObject& a, const SceneObject& b) {
  const CentreOffset offset = centre_offset(a, b);
  if (std::abs(offset.dx2) >= std::abs(offset.dy2)) return offset.dx2 > 0 ? Relation::LeftOf : Relation::RightOf;
  return offset.dy2 > 0 ? Relation::Above : Relation::Below;
}

ShapesSample generate_shapes_sample(const ShapesConfig& config, std::string_view split, int index) {
  check_config(config);
  if (index < 0) throw std::invalid_argument("generate_shapes_sample: negative index");
  const Geometry geometry{config.image_size};
  Random random(image_seed(config.seed, split_number(split), index));
  LaidOutScene layout = lay_out_scene(random, geometry);

  ShapesSample sample;
  sample.image = render_scene(layout, geometry, random);
  sample.scene.image_id = index + 1;
  sample.scene.file_name = image_file_name(index);
  sample.scene.objects = std::move(layout.objects);
  if (sample.scene.objects.size() == 2) {
    sample.scene.relation = relation_between(sample.scene.objects[0], sample.scene.objects[1]);
  }
  sample.captions = scene_captions(sample.scene);
  return sample;
}

bool shapes_dataset_is_complete(const std::string& out_dir, const ShapesConfig& config) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path root(out_dir);
  std::FILE* file = std::fopen(stamp_path(out_dir).c_str(), "rb");
  if (file == nullptr) return false;
  std::string text;
  char buffer[4096];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, got);
  std::fclose(file);
  const auto stamp = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (stamp != stamp_json(config)) return false;
  for (int split = 0; split < static_cast<int>(kShapesSplits.size()); ++split) {
    const std::string name(kShapesSplits[split]);
    if (!fs::is_regular_file(root / "annotations" / ("captions_" + name + ".json"), error)) return false;
    for (int index = 0; index < split_count(config, split); ++index) {
      if (!fs::is_regular_file(root / "images" / name / image_file_name(index), error)) return false;
    }
  }
  return true;
}

void generate_shapes_dataset(const std::string& out_dir, const ShapesConfig& config,
                             std::function<void(int done, int total)> progress) {
  namespace fs = std::filesystem;
  check_config(config);
  if (shapes_dataset_is_complete(out_dir, config)) return;

  const fs::path root(out_dir);
  std::error_code error;
  // Without the stamp a crash part-way through is recognised as an incomplete dataset next time.
  fs::remove(stamp_path(out_dir), error);
  for (std::string_view split : kShapesSplits) {
    fs::create_directories(root / "images" / std::string(split), error);
    if (error) {
      throw std::runtime_error("generate_shapes_dataset: cannot create " +
                               (root / "images" / std::string(split)).string() + " (" + error.message() + ")");
    }
  }
  fs::create_directories(root / "annotations", error);
  if (error) {
    throw std::runtime_error("generate_shapes_dataset: cannot create " + (root / "annotations").string() + " (" +
                             error.message() + ")");
  }

  const int total = config.train + config.val + config.test;
  int done = 0;
  std::mutex progress_mutex;
  for (int split = 0; split < static_cast<int>(kShapesSplits.size()); ++split) {
    const std::string split_name(kShapesSplits[split]);
    const int count = split_count(config, split);
    std::vector<SceneTruth> scenes(count);
    std::vector<std::vector<std::string>> captions(count);

    // Workers take the next unclaimed index; results land in per-index slots, so the order in which
    // threads finish cannot affect any file.
    std::atomic<int> next_index{0};
    std::atomic<bool> failed{false};
    std::exception_ptr first_error;
    const auto work = [&] {
      while (!failed) {
        const int index = next_index++;
        if (index >= count) return;
        try {
          ShapesSample sample = generate_shapes_sample(config, split_name, index);
          write_jpeg((root / "images" / split_name / sample.scene.file_name).string(), sample.image, kJpegQuality);
          scenes[index] = std::move(sample.scene);
          captions[index] = std::move(sample.captions);
          std::lock_guard<std::mutex> lock(progress_mutex);
          ++done;
          if (progress) progress(done, total);
        } catch (...) {
          std::lock_guard<std::mutex> lock(progress_mutex);
          if (!first_error) first_error = std::current_exception();
          failed = true;
        }
      }
    };
    const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
    const int threads =
        std::clamp(config.threads > 0 ? config.threads : static_cast<int>(hardware), 1, std::max(count, 1));
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t) {
      try {
        workers.emplace_back(work);
      } catch (const std::system_error&) {
        break;  // fewer threads only make it slower; the output is the same
      }
    }
    work();
    for (std::thread& worker : workers) worker.join();
    if (first_error) std::rethrow_exception(first_error);

    nlohmann::ordered_json images = nlohmann::ordered_json::array();
    nlohmann::ordered_json annotations = nlohmann::ordered_json::array();
    int64_t annotation_id = 1;
    for (int index = 0; index < count; ++index) {
      images.push_back(image_entry(scenes[index], config.image_size));
      for (const std::string& caption : captions[index]) {
        annotations.push_back({{"id", annotation_id++}, {"image_id", scenes[index].image_id}, {"caption", caption}});
      }
    }
    nlohmann::ordered_json document{{"info",
                                     {{"description", "glimpse synthetic shapes captioning dataset"},
                                      {"split", split_name},
                                      {"image_size", config.image_size},
                                      {"seed", config.seed},
                                      {"generator_version", kGeneratorVersion}}},
                                    {"images", images},
                                    {"annotations", annotations}};
    write_file_atomically((root / "annotations" / ("captions_" + split_name + ".json")).string(),
                          document.dump(1) + "\n", "generate_shapes_dataset");
  }
  // The stamp says "complete": every image and annotation file must be on disk before it is (they
  // were committed without an fsync each, which would cost seconds for thousands of small files).
  sync_file_system_of(stamp_path(out_dir).string(), "generate_shapes_dataset");
  write_file_atomically(stamp_path(out_dir).string(), stamp_json(config).dump(1) + "\n", "generate_shapes_dataset",
                        FileSync::Durable);
}

}  // namespace glimpse
