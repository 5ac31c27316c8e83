// Batching and the feature cache: shifted targets, seeded shuffles, resume skipping, a bad image
// dropped and counted, cached features read back exactly.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "io/batches.h"
#include "io/feature_cache.h"
#include "io/shapes_dataset.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {
struct Setup {
  fs::path root;
  CaptionDataset data;
  Tokenizer tokenizer{12};
  Setup() {
    root = fs::temp_directory_path() / ("glimpse_batches_" + std::to_string(::getpid()));
    fs::remove_all(root);
    ShapesConfig sc;
    sc.train = 10;
    sc.val = 1;
    sc.test = 1;
    sc.image_size = 64;
    generate_shapes_dataset((root / "d").string(), sc);
    data = read_coco_captions((root / "d/annotations/captions_train.json").string(),
                              (root / "d/images/train").string());
    tokenizer = build_caption_tokenizer(data, 40, 12);
  }
  ~Setup() { fs::remove_all(root); }
};
// Batches of 4 images of 32x32, shuffled with `seed`.
BatcherOptions small_batches(uint64_t seed) {
  BatcherOptions o;
  o.batch_size = 4;
  o.image_size = 32;
  o.seed = seed;
  return o;
}
}  // namespace

TEST_CASE("targets are the inputs shifted left by one, 0 last") {
  Tokenizer tok(std::vector<std::string>{"", "[UNK]", "a", "<start>", "<end>", "red", "circle"}, 6);
  std::vector<int32_t> in, tg;
  CaptionBatcher::caption_ids(tok, "a red circle", in, tg);
  CHECK(in == std::vector<int32_t>{3, 2, 5, 6, 4, 0});
  CHECK(tg == std::vector<int32_t>{2, 5, 6, 4, 0, 0});
}

TEST_CASE("batches: shapes, seeded order, resume skip, and a corrupt image is skipped and counted") {
  Setup s;
  BatcherOptions o = small_batches(7);
  CaptionBatcher a(s.data, s.tokenizer, o), b(s.data, s.tokenizer, o);
  CHECK(a.steps_per_epoch() == 2);  // 10 images, batch 4, remainder dropped
  a.start_epoch(0);
  CaptionBatch first, second;
  REQUIRE(a.next(first));
  CHECK(first.pixels_or_features.shape() == Shape{4, 32, 32, 3});
  CHECK(first.input_ids.shape() == Shape{4, 12});
  REQUIRE(a.next(second));
  CaptionBatch extra;
  CHECK(!a.next(extra));
  // Resuming at step 1 yields exactly the second batch.
  b.start_epoch(0, 1);
  CaptionBatch resumed;
  REQUIRE(b.next(resumed));
  CHECK(resumed.image_indices == second.image_indices);
  CHECK(resumed.input_ids.to_vector_i32() == second.input_ids.to_vector_i32());
  CHECK(resumed.pixels_or_features.to_vector() == second.pixels_or_features.to_vector());
  // Another epoch has another order.
  a.start_epoch(1);
  CaptionBatch other;
  REQUIRE(a.next(other));
  std::vector<size_t> all0 = first.image_indices;
  CHECK(other.image_indices != all0);

  // Corrupt one image file: its batch shrinks by one, the run goes on, the count says so.
  CaptionDataset damaged = s.data;
  {
    std::ofstream(damaged.images[0].path, std::ios::binary | std::ios::trunc) << "garbage";
  }
  BatcherOptions all = o;
  all.drop_remainder = false;
  CaptionBatcher c(damaged, s.tokenizer, all);
  c.start_epoch(0);
  int64_t seen = 0;
  CaptionBatch batch;
  while (c.next(batch)) seen += batch.size();
  CHECK(seen == 9);
  CHECK(c.bad_images() == 1);
  CHECK(c.bad_image_messages()[0].find(damaged.images[0].file_name) != std::string::npos);
}

TEST_CASE("batches with k captions per image: the same images, k caption rows each, in order") {
  Setup s;
  BatcherOptions one = small_batches(3);
  BatcherOptions three = one;
  three.captions_per_image = 3;
  CaptionBatcher a(s.data, s.tokenizer, one), b(s.data, s.tokenizer, three);
  CHECK(b.steps_per_epoch() == a.steps_per_epoch());
  a.start_epoch(2);
  b.start_epoch(2);
  CaptionBatch x, y;
  REQUIRE(a.next(x));
  REQUIRE(b.next(y));
  CHECK(y.captions_per_image == 3);
  CHECK(y.image_indices == x.image_indices);
  CHECK(y.pixels_or_features.to_vector() == x.pixels_or_features.to_vector());
  REQUIRE(y.input_ids.shape() == Shape{12, 12});
  CHECK(y.target_ids.shape() == Shape{12, 12});
  const std::vector<int32_t> ids1 = x.input_ids.to_vector_i32(), ids3 = y.input_ids.to_vector_i32();
  for (size_t i = 0; i < 4; ++i) {
    // Row i*3 is the caption drawn for the epoch; rows i*3+1, i*3+2 the image's next two.
    CHECK(std::vector<int32_t>(ids3.begin() + i * 36, ids3.begin() + i * 36 + 12) ==
          std::vector<int32_t>(ids1.begin() + i * 12, ids1.begin() + i * 12 + 12));
    const std::vector<std::string>& caps = s.data.images[y.image_indices[i]].captions;
    std::vector<int32_t> in, tg;
    bool found = false;
    for (size_t c = 0; c < caps.size(); ++c) {
      CaptionBatcher::caption_ids(s.tokenizer, caps[c], in, tg);
      if (in != std::vector<int32_t>(ids3.begin() + i * 36, ids3.begin() + i * 36 + 12)) continue;
      found = true;
      for (int j = 1; j < 3; ++j) {
        CaptionBatcher::caption_ids(s.tokenizer, caps[(c + j) % caps.size()], in, tg);
        CHECK(in == std::vector<int32_t>(ids3.begin() + i * 36 + j * 12, ids3.begin() + i * 36 + j * 12 + 12));
      }
      break;
    }
    CHECK(found);
  }
  BatcherOptions bad = three;
  bad.all_pairs = true;
  CHECK_THROWS_WITH(CaptionBatcher(s.data, s.tokenizer, bad), doctest::Contains("do not combine"));
}

TEST_CASE("sharded batches (data-parallel ranks): the ranks' slices make up one process's batch") {
  Setup s;
  BatcherOptions whole = small_batches(5);  // 10 images, global batch 4: 2 steps, 2 images over
  whole.batch_size = 4;
  CaptionBatcher one(s.data, s.tokenizer, whole);
  BatcherOptions rank0 = whole;
  rank0.batch_size = 2;
  rank0.shard_count = 2;
  BatcherOptions rank1 = rank0;
  rank1.shard_index = 1;
  CaptionBatcher first(s.data, s.tokenizer, rank0), second(s.data, s.tokenizer, rank1);
  CaptionBatcher* ranks[2] = {&first, &second};
  // Equal step counts on every rank, counted in global batches, the remainder dropped by all.
  CHECK(ranks[0]->steps_per_epoch() == 2);
  CHECK(ranks[1]->steps_per_epoch() == 2);
  one.start_epoch(1, 1);  // resume skips count global batches too
  for (CaptionBatcher* r : ranks) r->start_epoch(1, 1);
  CaptionBatch all, part0, part1;
  REQUIRE(one.next(all));
  REQUIRE(ranks[0]->next(part0));
  REQUIRE(ranks[1]->next(part1));
  std::vector<size_t> joined = part0.image_indices;
  joined.insert(joined.end(), part1.image_indices.begin(), part1.image_indices.end());
  CHECK(joined == all.image_indices);
  std::vector<int32_t> ids = part0.input_ids.to_vector_i32();
  const std::vector<int32_t> ids1 = part1.input_ids.to_vector_i32();
  ids.insert(ids.end(), ids1.begin(), ids1.end());
  CHECK(ids == all.input_ids.to_vector_i32());
  CHECK_FALSE(one.next(all));
  CHECK_FALSE(ranks[0]->next(part0));
  CHECK_FALSE(ranks[1]->next(part1));

  // Without dropping the remainder (evaluation) the last global batch has 2 images: rank 0 gets
  // both, rank 1 an empty slice, which it sees only when it asks for empty batches.
  BatcherOptions o = whole;
  o.batch_size = 2;
  o.shard_count = 2;
  o.shard_index = 1;
  o.drop_remainder = false;
  o.keep_empty_batches = true;
  CaptionBatcher tail(s.data, s.tokenizer, o);
  CHECK(tail.steps_per_epoch() == 3);
  tail.start_epoch(0);
  CaptionBatch b;
  int batches = 0, empty = 0;
  while (tail.next(b)) {
    ++batches;
    empty += b.size() == 0;
  }
  CHECK(batches == 3);
  CHECK(empty == 1);
  o.keep_empty_batches = false;
  CaptionBatcher skipping(s.data, s.tokenizer, o);
  skipping.start_epoch(0);
  batches = 0;
  while (skipping.next(b)) ++batches;
  CHECK(batches == 2);
  o.shard_index = 2;
  CHECK_THROWS_WITH(CaptionBatcher(s.data, s.tokenizer, o), doctest::Contains("shard_index"));
}

TEST_CASE("feature cache: build, read back, refuse mismatched settings") {
  Setup s;
  const std::string path = (s.root / "features.h5").string();
  std::vector<int64_t> ids;
  for (auto& im : s.data.images) ids.push_back(im.image_id);
  FeatureCacheInfo info{"tiny", 64, "inception", 4, 3, "0123456789abcdef"};
  auto encode = [](size_t first, size_t count) {
    std::vector<float> v;
    for (size_t i = first; i < first + count; ++i)
      for (int k = 0; k < 12; ++k) v.push_back(static_cast<float>(i * 100 + k) / 8.0f);
    return Tensor::from_vector(v, {static_cast<int64_t>(count), 4, 3});
  };
  FeatureCache::build(path, ids, info, /*float16=*/false, 3, encode);
  FeatureCache cache(path);
  std::vector<float> f = cache.features(ids[4]);
  REQUIRE(f.size() == 12);
  CHECK(f[0] == 400.0f / 8);
  CHECK(f[11] == 411.0f / 8);
  CHECK_THROWS_WITH(cache.features(-5), doctest::Contains("no features for image id -5"));
  CHECK_NOTHROW(cache.check_matches(info));
  FeatureCacheInfo other = info;
  other.image_size = 299;
  CHECK_THROWS_WITH(cache.check_matches(other), doctest::Contains("image size"));
  other = info;
  other.weights = "fedcba9876543210";  // features of other encoder weights must be refused
  CHECK_THROWS_WITH(cache.check_matches(other), doctest::Contains("encoder weights 0123456789abcdef"));
  // float16 storage rounds to half precision (values here are exact in half).
  FeatureCache::build(path, ids, info, /*float16=*/true, 4, encode);
  CHECK(FeatureCache(path).features(ids[1])[3] == 103.0f / 8);

  // Batches from the cache carry features instead of pixels.
  BatcherOptions o;
  o.batch_size = 5;
  o.feature_cache = std::make_shared<FeatureCache>(path);
  CaptionBatcher b(s.data, s.tokenizer, o);
  b.start_epoch(0);
  CaptionBatch batch;
  REQUIRE(b.next(batch));
  CHECK(batch.pixels_or_features.shape() == Shape{5, 4, 3});
}
