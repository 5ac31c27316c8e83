// Tests for io/captions: the COCO, Karpathy and Flickr readers on small hand-written files, the
// corpus of bad files under tests/data/bad_captions/, and the per-epoch (image, caption) order.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/captions.h"

using namespace glimpse;

namespace {

const std::string kData = std::string(GLIMPSE_TEST_DATA) + "/data/";
const std::string kGood = kData + "captions/";
const std::string kBad = kData + "bad_captions/";

using Strings = std::vector<std::string>;

// The message of the runtime_error that f throws ("" when it throws none).
template <typename F>
std::string error_message(F&& f) {
    try {
        f();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

CaptionDataset make_dataset(const std::vector<size_t>& caption_counts) {
    CaptionDataset dataset;
    for (size_t i = 0; i < caption_counts.size(); ++i) {
        CaptionedImage image;
        image.image_id = static_cast<int64_t>(100 + i);
        for (size_t c = 0; c < caption_counts[i]; ++c)
            image.captions.push_back("caption " + std::to_string(c));
        dataset.images.push_back(image);
    }
    return dataset;
}

}  // namespace

TEST_CASE("read_coco_captions: images in file order, captions grouped and trimmed") {
    CaptionDataset dataset =
        read_coco_captions(kGood + "coco/captions_mini.json", kGood + "coco/images");
    REQUIRE(dataset.images.size() == 3);
    CHECK(dataset.problem_count() == 0);
    CHECK(dataset.problems.empty());
    CHECK(dataset.caption_count() == 6);

    const CaptionedImage& first = dataset.images[0];
    CHECK(first.image_id == 11);
    CHECK(first.file_name == "000011.jpg");
    CHECK(first.path == kGood + "coco/images/000011.jpg");
    CHECK(first.captions ==
          Strings{"a small red circle", "There is a small red circle.", "one small red circle"});
    CHECK(dataset.images[1].image_id == 7);
    CHECK(dataset.images[1].captions ==
          Strings{"A large blue square.", "a large blue square on a plain background"});
    CHECK(dataset.images[2].image_id == 30);
    CHECK(dataset.images[2].captions.size() == 1);
    CHECK(contains(summarize_problems(dataset), "loaded 3 images, 6 captions; no problems"));
}

TEST_CASE("read_karpathy_split selects one split; train may take restval") {
    const std::string file = kGood + "karpathy/dataset_mini.json";
    const std::string root = kGood + "karpathy";

    CaptionDataset train = read_karpathy_split(file, root, "train");
    REQUIRE(train.images.size() == 2);
    CHECK(train.problem_count() == 0);
    CHECK(train.images[0].image_id == 9);
    CHECK(train.images[0].file_name == "COCO_train2014_000000000009.jpg");
    CHECK(train.images[0].path == root + "/train2014/COCO_train2014_000000000009.jpg");
    CHECK(train.images[0].captions == Strings{"A plate of food.", "Some broccoli"});
    CHECK(train.images[1].image_id == 25);
    CHECK(train.images[1].captions.size() == 3);

    CaptionReadOptions with_restval;
    with_restval.train_includes_restval = true;
    CaptionDataset train_restval = read_karpathy_split(file, root, "train", with_restval);
    REQUIRE(train_restval.images.size() == 3);
    CHECK(train_restval.images[1].image_id == 73);  // file order is kept
    CHECK(train_restval.images[1].path == root + "/val2014/COCO_val2014_000000000073.jpg");

    CaptionDataset test = read_karpathy_split(file, root, "test");
    REQUIRE(test.images.size() == 1);
    CHECK(test.images[0].image_id == 42);
    CHECK(test.images[0].captions == Strings{"A dog on a couch.", "A brown dog sleeping"});
    CHECK(read_karpathy_split(file, root, "val").images.size() == 1);
    CHECK(read_karpathy_split(file, root, "restval").images.size() == 1);
    CHECK_THROWS_AS(read_karpathy_split(file, root, "validation"), std::invalid_argument);
}

TEST_CASE("read_karpathy_split on a Flickr split file: no filepath, imgid as the id") {
    const std::string images = kGood + "flickr/images";
    CaptionDataset train =
        read_karpathy_split(kGood + "karpathy/dataset_flickr_mini.json", images, "train");
    REQUIRE(train.images.size() == 2);
    CHECK(train.problem_count() == 0);
    CHECK(train.images[0].image_id == 0);
    CHECK(train.images[0].path == images + "/1000268201_693b08cb0e.jpg");
    CHECK(train.images[0].captions ==
          Strings{"A child in a pink dress .", "A girl going into a wooden building ."});
    CHECK(train.images[1].image_id == 2);  // neither cocoid nor imgid: the record's position
}

TEST_CASE("read_flickr_captions: token file, with and without a split list") {
    const std::string tokens = kGood + "flickr/Flickr8k.token.txt";
    const std::string images = kGood + "flickr/images";

    CaptionDataset all = read_flickr_captions(tokens, images);
    REQUIRE(all.images.size() == 3);
    CHECK(all.problem_count() == 0);
    CHECK(all.images[0].file_name == "1000268201_693b08cb0e.jpg");
    CHECK(all.images[0].image_id == 1000268201);
    CHECK(all.images[0].path == images + "/1000268201_693b08cb0e.jpg");
    // The #2 line comes after other images' lines but still belongs to the first image.
    CHECK(all.images[0].captions ==
          Strings{"A child in a pink dress is climbing up a set of stairs in an entry way .",
                  "A girl going into a wooden building .",
                  "A little girl climbing into a wooden playhouse ."});
    CHECK(all.images[1].image_id == 1001773457);
    CHECK(all.images[2].captions.size() == 1);

    CaptionDataset split =
        read_flickr_captions(tokens, images, kGood + "flickr/Flickr_8k.trainImages.txt");
    REQUIRE(split.images.size() == 2);
    CHECK(split.images[0].file_name == "1002674143_1b742ab4b8.jpg");  // the list's order
    CHECK(split.images[1].file_name == "1000268201_693b08cb0e.jpg");
    CHECK(split.problem_count() == 0);
}

TEST_CASE("malformed JSON is an error naming the file and the position") {
    std::string message = error_message(
        [] { read_coco_captions(kBad + "truncated.json", kBad + "images"); });
    CHECK(contains(message, "read_coco_captions"));
    CHECK(contains(message, kBad + "truncated.json"));
    CHECK(contains(message, "invalid JSON at byte"));
    CHECK(contains(message, "parse error"));
}

TEST_CASE("a wrong top-level layout is an error naming the file and the member") {
    std::string message = error_message(
        [] { read_coco_captions(kBad + "annotations_not_array.json", kBad + "images"); });
    CHECK(contains(message, "annotations_not_array.json"));
    CHECK(contains(message, "\"annotations\" is object, expected an array"));

    message = error_message(
        [] { read_coco_captions(kBad + "top_level_array.json", kBad + "images"); });
    CHECK(contains(message, "top level is array"));

    message = error_message(
        [] { read_coco_captions(kBad + "no_images_member.json", kBad + "images"); });
    CHECK(contains(message, "no \"images\" member"));

    message = error_message([] { read_karpathy_split(kBad + "truncated.json", kBad, "train"); });
    CHECK(contains(message, "read_karpathy_split"));
    CHECK(contains(message, "invalid JSON"));
}

TEST_CASE("missing files are errors naming the file") {
    std::string message =
        error_message([] { read_coco_captions(kBad + "no_such_file.json", kBad); });
    CHECK(contains(message, kBad + "no_such_file.json"));
    CHECK(contains(message, "cannot open"));
    CHECK(contains(error_message([] { read_flickr_captions(kBad + "nope.txt", kBad); }),
                   "nope.txt: cannot open"));
    CHECK(contains(error_message([] {
                       read_flickr_captions(kBad + "flickr_bad.token.txt", kBad, kBad + "nolist.txt");
                   }),
                   "nolist.txt: cannot open"));
}

TEST_CASE("bad COCO records are counted and skipped, the rest loads") {
    CaptionDataset dataset = read_coco_captions(kBad + "bad_records.json", kBad + "images");
    REQUIRE(dataset.images.size() == 2);
    CHECK(dataset.images[0].image_id == 1);
    CHECK(dataset.images[0].captions == Strings{"a cat"});
    CHECK(dataset.images[1].image_id == 7);
    CHECK(dataset.images[1].captions == Strings{"a bird"});

    // images: string id, numeric file_name, non-object, repeated id (4);
    // annotations: numeric caption, null caption, unknown id, string id, non-object,
    // fractional caption, fractional id, no id (8).
    CHECK(dataset.bad_records == 12);
    CHECK(dataset.empty_captions == 3);
    CHECK(dataset.images_without_captions == 2);  // id 5 (only empty ones), id 6 (none)
    CHECK(dataset.missing_image_files == 1);      // id 4
    CHECK(dataset.problems.size() == 18);

    std::string summary = summarize_problems(dataset);
    CHECK(contains(summary, "loaded 2 images, 2 captions"));
    CHECK(contains(summary, "1 missing image files"));
    CHECK(contains(summary, "2 images without captions"));
    CHECK(contains(summary, "3 empty captions"));
    CHECK(contains(summary, "12 bad records"));
    CHECK(contains(summary, "missing.jpg not found"));
    CHECK(contains(summary, "images[1]: \"id\" is string, expected an integer"));
    CHECK(contains(summary, "annotations[3]: image_id 99 is not in \"images\""));
    CHECK(contains(summary, "annotations[11]: \"caption\" is number, expected a string"));

    CaptionReadOptions unchecked;
    unchecked.check_images = false;
    unchecked.max_problem_messages = 5;
    CaptionDataset all = read_coco_captions(kBad + "bad_records.json", kBad + "images", unchecked);
    REQUIRE(all.images.size() == 3);
    CHECK(all.images[1].image_id == 4);
    CHECK(all.missing_image_files == 0);
    CHECK(all.problems.size() == 5);  // capped, while the counters keep counting
    CHECK(all.problem_count() == 17);
    CHECK(contains(summarize_problems(all), "... and 12 more"));
}

TEST_CASE("bad Karpathy records are counted and skipped") {
    CaptionDataset dataset = read_karpathy_split(kBad + "karpathy_bad.json", kBad, "train");
    REQUIRE(dataset.images.size() == 1);
    CHECK(dataset.images[0].image_id == 4);
    CHECK(dataset.images[0].path == kBad + "p/d.jpg");
    CHECK(dataset.images[0].captions == Strings{"a good caption"});
    // non-object, numeric split, no filename, sentences not an array, numeric raw, no raw,
    // array filepath, string cocoid; the test-split record is not examined.
    CHECK(dataset.bad_records == 8);
    CHECK(dataset.problem_count() == 8);
}

TEST_CASE("bad Flickr lines are counted and skipped") {
    CaptionDataset dataset = read_flickr_captions(kBad + "flickr_bad.token.txt", kBad + "images");
    REQUIRE(dataset.images.size() == 1);
    CHECK(dataset.images[0].file_name == "good.jpg");
    CHECK(dataset.images[0].image_id == 0);  // no leading photo number: its position
    CHECK(dataset.images[0].captions == Strings{"A good caption .", "Windows line ending"});
    CHECK(dataset.bad_records == 2);
    CHECK(dataset.empty_captions == 1);
    CHECK(dataset.missing_image_files == 1);
    CHECK(contains(summarize_problems(dataset), "flickr_bad.token.txt:2: no tab"));
}

TEST_CASE("SplitMix64 reproduces the reference generator's output") {
    // First outputs of Vigna's splitmix64.c seeded with 1234567 (the values rand_xoshiro's tests
    // use; recomputed with a three-line Python transcription of the C code).
    SplitMix64 rng(1234567);
    CHECK(rng.next() == 6457827717110365317ULL);
    CHECK(rng.next() == 3203168211198807973ULL);
    CHECK(rng.next() == 9817491932198370423ULL);
    CHECK(rng.next() == 4593380528125082431ULL);
    CHECK(rng.next() == 16408922859458223821ULL);
}

TEST_CASE("SplitMix64::below is in range and roughly uniform") {
    SplitMix64 rng(42);
    std::vector<int> counts(7, 0);
    int out_of_range = 0;
    for (int i = 0; i < 70000; ++i) {
        uint64_t value = rng.below(7);
        if (value < 7) ++counts[value];
        else ++out_of_range;
    }
    CHECK(out_of_range == 0);
    for (int count : counts) CHECK(std::abs(count - 10000) < 500);  // ~5 sigma
    CHECK(rng.below(1) == 0);
    CHECK_THROWS_AS(rng.below(0), std::invalid_argument);
}

TEST_CASE("epoch_pairs: one caption per image, shuffled, reproducible") {
    CaptionDataset dataset = make_dataset({5, 1, 3, 5, 2, 4, 5, 5, 1, 5});
    auto pairs = epoch_pairs(dataset, 7, 0, false);
    REQUIRE(pairs.size() == dataset.images.size());
    std::set<size_t> seen_images;
    for (auto [image, caption] : pairs) {
        REQUIRE(image < dataset.images.size());
        CHECK(caption < dataset.images[image].captions.size());
        seen_images.insert(image);
    }
    CHECK(seen_images.size() == dataset.images.size());

    CHECK(epoch_pairs(dataset, 7, 0, false) == pairs);
    CHECK(epoch_pairs(dataset, 7, 1, false) != pairs);
    CHECK(epoch_pairs(dataset, 8, 0, false) != pairs);
}

TEST_CASE("epoch_pairs: every caption is drawn about equally often across epochs") {
    CaptionDataset dataset = make_dataset(std::vector<size_t>(50, 5));
    std::map<size_t, int> caption_counts;
    std::map<size_t, int> first_position_counts;
    const int epochs = 200;
    for (int epoch = 0; epoch < epochs; ++epoch) {
        auto pairs = epoch_pairs(dataset, 1, epoch, false);
        for (auto [image, caption] : pairs) ++caption_counts[caption];
        ++first_position_counts[pairs.front().first];
    }
    // 10,000 draws over 5 captions: 2000 each, sd 40.
    for (auto [caption, count] : caption_counts) CHECK(std::abs(count - 2000) < 200);
    CHECK(first_position_counts.size() > 40);  // the shuffle moves every image to the front
}

TEST_CASE("epoch_pairs: all_pairs visits every (image, caption) once") {
    CaptionDataset dataset = make_dataset({5, 1, 3, 2});
    auto pairs = epoch_pairs(dataset, 3, 4, true);
    REQUIRE(pairs.size() == 11);
    std::set<std::pair<size_t, size_t>> unique(pairs.begin(), pairs.end());
    CHECK(unique.size() == 11);
    for (auto [image, caption] : unique) CHECK(caption < dataset.images[image].captions.size());
    auto sorted = pairs;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted != pairs);  // shuffled (11! orders; the sorted one is vanishingly unlikely)
    CHECK(epoch_pairs(dataset, 3, 4, true) == pairs);

    CHECK(epoch_pairs(CaptionDataset{}, 1, 0, false).empty());
    CHECK_THROWS_AS(epoch_pairs(make_dataset({2, 0}), 1, 0, false), std::invalid_argument);
}
