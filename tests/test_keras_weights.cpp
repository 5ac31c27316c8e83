// Tests of io/keras_weights against weight files written by real tf_keras, Keras 3 and h5py
// (tests/golden/gen_keras_weight_files.py). The expected layers, names, shapes and every value come
// from the Keras models themselves (tests/data/keras/expected.json), not from reading the files.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/hdf5.h"
#include "io/keras_weights.h"

namespace fs = std::filesystem;
using namespace glimpse;
using nlohmann::json;

namespace {

const std::string kKerasData = std::string(GLIMPSE_TEST_DATA) + "/data/keras";
const std::string kBadFiles = std::string(GLIMPSE_TEST_DATA) + "/data/bad_h5";

const json& expectations() {
  static const json all = [] {
    std::ifstream in(kKerasData + "/expected.json");
    REQUIRE(in.good());
    return json::parse(in);
  }();
  return all;
}

// Compares everything the reader returned with what Keras says the file holds.
void check_matches_expectation(const KerasWeightFile& actual, const json& expected) {
  CHECK(actual.format == expected["format"].get<std::string>());
  CHECK(actual.keras_version == expected["keras_version"].get<std::string>());
  CHECK(actual.backend == expected["backend"].get<std::string>());
  const json& layers = expected["layers"];
  REQUIRE(actual.layers.size() == layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    const KerasLayerWeights& layer = actual.layers[l];
    const json& want = layers[l];
    CAPTURE(l);
    CAPTURE(layer.group_path);
    CHECK(layer.layer_name == want["layer_name"].get<std::string>());
    CHECK(layer.group_path == want["group_path"].get<std::string>());
    CHECK(layer.keras3_class == want["keras3_class"].get<std::string>());
    CHECK(layer.keras3_class_index == want["keras3_index"].get<int64_t>());
    REQUIRE(layer.weights.size() == want["weights"].size());
    for (size_t w = 0; w < layer.weights.size(); ++w) {
      const KerasWeight& weight = layer.weights[w];
      const json& want_weight = want["weights"][w];
      CAPTURE(weight.name);
      CHECK(weight.name == want_weight["name"].get<std::string>());
      CHECK(weight.shape == want_weight["shape"].get<std::vector<int64_t>>());
      std::vector<double> values = want_weight["values"].get<std::vector<double>>();
      REQUIRE(weight.data.size() == values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        // The JSON doubles are float32 values exactly, so the narrowing is exact.
        float expected_value = static_cast<float>(values[i]);
        REQUIRE_MESSAGE(
            std::bit_cast<uint32_t>(weight.data[i]) == std::bit_cast<uint32_t>(expected_value),
            "value " << i << ": " << weight.data[i] << " vs " << expected_value);
      }
    }
  }
}

KerasWeightFile read_fixture(const std::string& fixture) {
  return read_keras_weights(kKerasData + "/" + expectations()[fixture]["file"].get<std::string>());
}

template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const std::exception& error) {
    return error.what();
  }
  FAIL("expected an exception");
  return "";
}

std::string bad_file_error(const std::string& name) {
  return error_message([&] { read_keras_weights(kBadFiles + "/" + name); });
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Files written by Keras

TEST_CASE("tf_keras legacy save_weights file: every layer, name and value") {
  KerasWeightFile weights = read_fixture("tf_keras_legacy");
  check_matches_expectation(weights, expectations()["tf_keras_legacy"]);
  // Spot checks of what the test model is made of.
  const KerasLayerWeights& bn = find_keras_layer(weights, "batch_normalization");
  REQUIRE(bn.weights.size() == 3);  // scale=False: beta, moving_mean, moving_variance
  CHECK(bn.weights[0].name == "batch_normalization/beta:0");
  CHECK(bn.weights[2].name == "batch_normalization/moving_variance:0");
  CHECK(find_keras_layer(weights, "stem_conv").weights.size() == 1);  // no bias
  CHECK(find_keras_layer(weights, "gru").weights[2].shape == std::vector<int64_t>{2, 6});
}

TEST_CASE("Keras 3 .weights.h5 of the same model: class-numbered groups, same values") {
  KerasWeightFile keras3 = read_fixture("keras3");
  check_matches_expectation(keras3, expectations()["keras3"]);

  // The explicitly named first Conv2D lives at layers/conv2d; the auto-named "conv2d" (the
  // second Conv2D) at layers/conv2d_1: group names count positions, the name attribute tells.
  const KerasLayerWeights& stem = find_keras_layer(keras3, "stem_conv");
  CHECK(stem.group_path == "layers/conv2d");
  CHECK(find_keras_layer(keras3, "conv2d").group_path == "layers/conv2d_1");
  CHECK(find_keras_layer(keras3, "gru").weights[0].name == "cell/vars/0");

  // Both formats hold the same numbers for every layer.
  KerasWeightFile legacy = read_fixture("tf_keras_legacy");
  REQUIRE(legacy.layers.size() == keras3.layers.size());
  for (const KerasLayerWeights& layer : legacy.layers) {
    const KerasLayerWeights& twin = find_keras_layer(keras3, layer.layer_name);
    REQUIRE(twin.weights.size() == layer.weights.size());
    for (size_t w = 0; w < layer.weights.size(); ++w) {
      CHECK(twin.weights[w].shape == layer.weights[w].shape);
      CHECK(twin.weights[w].data == layer.weights[w].data);
    }
  }
}

TEST_CASE("Keras 3: within a class (and model), the reader's order is model.layers order") {
  for (std::string fixture : {"keras3", "keras3_nested"}) {
    CAPTURE(fixture);
    KerasWeightFile weights = read_fixture(fixture);
    std::vector<std::string> model_order =
        expectations()[fixture]["model_order_group_paths"].get<std::vector<std::string>>();
    // Numbering restarts in every (nested) model, so the key is the container plus the class.
    auto key = [](const KerasLayerWeights& layer) {
      return layer.group_path.substr(0, layer.group_path.rfind('/')) + " " + layer.keras3_class;
    };
    std::map<std::string, std::vector<std::string>> by_class_model, by_class_reader;
    for (const std::string& path : model_order) {
      for (const KerasLayerWeights& layer : weights.layers)
        if (layer.group_path == path) by_class_model[key(layer)].push_back(path);
    }
    for (const KerasLayerWeights& layer : weights.layers)
      by_class_reader[key(layer)].push_back(layer.group_path);
    CHECK(by_class_reader == by_class_model);
    CHECK(by_class_reader.size() < weights.layers.size());  // some class occurs twice
  }
}

TEST_CASE("Keras 3 nesting: nested models flattened, sub-layers merged, optimizer skipped") {
  KerasWeightFile weights = read_fixture("keras3_nested");
  check_matches_expectation(weights, expectations()["keras3_nested"]);
  CHECK(find_keras_layer(weights, "enc_dense").group_path == "layers/functional/layers/dense");
  const KerasLayerWeights& attention = find_keras_layer(weights, "attention");
  REQUIRE(attention.weights.size() == 8);
  CHECK(attention.weights[0].name == "key_dense/vars/0");
  CHECK(attention.weights[4].name == "query_dense/vars/0");
  // dense_10 comes after dense_9 (natural order), not between dense_1 and dense_2.
  std::vector<std::string> dense_paths;
  for (const KerasLayerWeights& layer : weights.layers)
    if (layer.group_path.rfind("layers/dense", 0) == 0) dense_paths.push_back(layer.group_path);
  REQUIRE(dense_paths.size() == 11);
  CHECK(dense_paths[2] == "layers/dense_2");
  CHECK(dense_paths[10] == "layers/dense_10");
  for (const KerasLayerWeights& layer : weights.layers)
    CHECK(layer.group_path.rfind("optimizer", 0) == std::string::npos);
  CHECK(H5File::open_read(kKerasData + "/keras3_nested.weights.h5").is_group("optimizer/vars"));
}

TEST_CASE("tf_keras model.save() file: weights under model_weights") {
  KerasWeightFile weights = read_fixture("tf_keras_full_model");
  check_matches_expectation(weights, expectations()["tf_keras_full_model"]);
  CHECK(weights.layers.front().group_path == "model_weights/conv");
}

TEST_CASE("layer_names split by tf_keras into layer_names0, layer_names1") {
  const std::string path = kKerasData + "/chunked_layer_names.h5";
  H5File file = H5File::open_read(path);
  CHECK_FALSE(file.has_attr("/", "layer_names"));
  CHECK(file.has_attr("/", "layer_names0"));
  CHECK(file.has_attr("/", "layer_names1"));
  std::vector<std::string> all_names =
      expectations()["chunked_layer_names"]["all_layer_names"].get<std::vector<std::string>>();
  CHECK(read_keras_string_list_attr(file, "/", "layer_names") == all_names);
  CHECK(std::any_of(all_names.begin(), all_names.end(),
                    [](const std::string& name) { return name.size() > 13000; }));
  check_matches_expectation(read_keras_weights(file), expectations()["chunked_layer_names"]);
}

TEST_CASE("official-style file: fixed-length strings, TF-slim names, file order kept") {
  const std::string path = kKerasData + "/official_style.h5";
  KerasWeightFile weights = read_keras_weights(path);
  check_matches_expectation(weights, expectations()["official_style"]);
  H5File file = H5File::open_read(path);
  CHECK(read_keras_string_list_attr(file, "/", "layer_names") ==
        expectations()["official_style"]["all_layer_names"].get<std::vector<std::string>>());
  CHECK(read_keras_string_list_attr(file, "Conv2d_1a_3x3_Activation", "weight_names").empty());
  const KerasLayerWeights& bn = find_keras_layer(weights, "Conv2d_1a_3x3_BatchNorm");
  CHECK(bn.group_path == "Conv2d_1a_3x3_BatchNorm");
  CHECK(bn.weights[1].name == "Conv2d_1a_3x3_BatchNorm/moving_mean:0");
  // Block35_10 follows Block35_1 as in layer_names (no sorting of any kind for legacy files).
  CHECK(weights.layers[4].layer_name == "Block35_1_Conv2d_1x1");
  CHECK(weights.layers[5].layer_name == "Block35_10_Conv2d_1x1");
}

// ---------------------------------------------------------------------------------------------
// Synthetic files for the corners real Keras rarely reaches

TEST_CASE("more than ten layer_names chunks are read in numeric order") {
  struct ScratchDirectory {
    fs::path path =
        fs::temp_directory_path() / ("glimpse_test_keras_weights_" + std::to_string(::getpid()));
    ScratchDirectory() { fs::create_directories(path); }
    ~ScratchDirectory() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } scratch;
  const std::string path = (scratch.path / "chunks.h5").string();
  std::vector<std::string> names;
  {
    H5File file = H5File::create(path);
    for (int chunk = 0; chunk < 12; ++chunk) {
      std::string name = "layer_" + std::to_string(chunk);
      names.push_back(name);
      file.set_string_array_attr("/", "layer_names" + std::to_string(chunk), {name});
      file.create_group(name);
      file.set_string_array_attr(name, "weight_names0", {name + "/w:0"});
      file.set_string_array_attr(name, "weight_names1", {name + "/b:0"});
      file.write(name + "/" + name + "/w:0", {1}, std::vector<float>{static_cast<float>(chunk)});
      file.write(name + "/" + name + "/b:0", {}, std::vector<float>{-1.0f});
    }
  }
  KerasWeightFile weights = read_keras_weights(path);
  REQUIRE(weights.layers.size() == 12);
  for (int chunk = 0; chunk < 12; ++chunk) {
    CHECK(weights.layers[chunk].layer_name == names[chunk]);
    CHECK(weights.layers[chunk].weights[0].data == std::vector<float>{static_cast<float>(chunk)});
    CHECK(weights.layers[chunk].weights[1].shape.empty());
  }
  CHECK(weights.keras_version.empty());

  // A Keras-3-like file from an older Keras: _layer_checkpoint_dependencies and vars/0..vars/11.
  {
    H5File file = H5File::create(path);
    for (int i = 0; i < 12; ++i)
      file.write("_layer_checkpoint_dependencies/my_layer/vars/" + std::to_string(i), {1},
                 std::vector<float>{static_cast<float>(i)});
  }
  // Sub-objects in Keras's visiting order: attribute names sorted, private ("_...") ones last.
  {
    H5File file = H5File::open_read_write(path);
    file.write("_layer_checkpoint_dependencies/my_layer/_private/vars/0", {1},
               std::vector<float>{100});
    file.write("_layer_checkpoint_dependencies/my_layer/zeta/vars/0", {1}, std::vector<float>{200});
    file.write("_layer_checkpoint_dependencies/my_layer/alpha/inner/vars/0", {1},
               std::vector<float>{300});
  }
  weights = read_keras_weights(path);
  CHECK(weights.format == "keras3");
  REQUIRE(weights.layers.size() == 1);
  REQUIRE(weights.layers[0].weights.size() == 15);
  CHECK(weights.layers[0].weights[12].name == "alpha/inner/vars/0");
  CHECK(weights.layers[0].weights[13].name == "zeta/vars/0");
  CHECK(weights.layers[0].weights[14].name == "_private/vars/0");
  CHECK(weights.layers[0].weights[14].data == std::vector<float>{100});
  weights.layers[0].weights.resize(12);
  CHECK(weights.layers[0].layer_name == "my_layer");  // no name attribute: the group name
  for (int i = 0; i < 12; ++i) {
    CHECK(weights.layers[0].weights[i].name == "vars/" + std::to_string(i));
    CHECK(weights.layers[0].weights[i].data == std::vector<float>{static_cast<float>(i)});
  }
}

// ---------------------------------------------------------------------------------------------
// Broken files

TEST_CASE("broken weight files are rejected with the file and the item named") {
  std::string message = bad_file_error("missing_dataset.h5");
  CHECK(contains(message, kBadFiles + "/missing_dataset.h5"));
  CHECK(contains(message, "weight 'dense/bias:0' is listed in weight_names"));
  CHECK(contains(message, "no dataset 'dense/dense/bias:0'"));

  message = bad_file_error("missing_weight_names.h5");
  CHECK(contains(message, "layer group 'dense' has no 'weight_names' attribute"));

  message = bad_file_error("missing_layer_group.h5");
  CHECK(contains(message, "layer 'ghost_layer' is listed in layer_names"));

  message = bad_file_error("no_layer_names.h5");
  CHECK(contains(message, kBadFiles + "/no_layer_names.h5"));
  CHECK(contains(message, "not a Keras weight file"));

  CHECK(contains(bad_file_error("string_weight.h5"), "holds string values, not numbers"));
  CHECK(contains(bad_file_error("not_hdf5.h5"), "not an HDF5 file"));
  CHECK(contains(bad_file_error("empty.h5"), "the file is empty"));
  CHECK(contains(bad_file_error("truncated.h5"), "truncated"));
  CHECK(contains(bad_file_error("no_such_file.h5"), "no such file"));

  // The file's own HDF5 part is fine, so H5File itself opens it.
  H5File file = H5File::open_read(kBadFiles + "/no_layer_names.h5");
  CHECK(contains(error_message([&] { read_keras_string_list_attr(file, "/", "layer_names"); }),
                 "has no attribute 'layer_names' (nor 'layer_names0'"));
}

TEST_CASE("find_keras_layer reports what exists") {
  KerasWeightFile weights = read_fixture("official_style");
  CHECK(find_keras_layer(weights, "Conv2d_7b_1x1").weights.size() == 1);
  std::string message = error_message([&] { find_keras_layer(weights, "conv_7b"); });
  CHECK(contains(message, "no layer with weights named 'conv_7b' among 8"));
  CHECK(contains(message, "Conv2d_1a_3x3"));
  CHECK_THROWS_AS(find_keras_layer(weights, "input_1"), std::runtime_error);  // no weights
}

// ---------------------------------------------------------------------------------------------
// Name helpers

TEST_CASE("split_keras_auto_name") {
  auto split = [](const std::string& name) {
    KerasNameParts parts = split_keras_auto_name(name);
    return parts.base + "|" + std::to_string(parts.index);
  };
  CHECK(split("conv2d") == "conv2d|0");
  CHECK(split("conv2d_12") == "conv2d|12");
  CHECK(split("batch_normalization_203") == "batch_normalization|203");
  CHECK(split("block35_1_conv") == "block35_1_conv|0");
  CHECK(split("Conv2d_1a_3x3") == "Conv2d_1a_3x3|0");
  CHECK(split("input_1") == "input|1");
  CHECK(split("_1") == "_1|0");
  CHECK(split("dense_") == "dense_|0");
  CHECK(split("dense_99999999999999999999") == "dense_99999999999999999999|0");
}

TEST_CASE("natural_less orders digit runs by value") {
  CHECK(natural_less("conv2d_2", "conv2d_10"));
  CHECK_FALSE(natural_less("conv2d_10", "conv2d_2"));
  CHECK(natural_less("conv2d", "conv2d_1"));
  CHECK(natural_less("vars/9", "vars/10"));
  CHECK(natural_less("a", "b"));
  CHECK_FALSE(natural_less("same", "same"));
  CHECK(natural_less("x007", "x8"));
  CHECK(natural_less("x01", "x1") != natural_less("x1", "x01"));  // strict, deterministic
  CHECK(natural_less("conv2d_9", "dense"));

  std::vector<std::string> expected;
  for (int i = 0; i < 25; ++i) expected.push_back(i == 0 ? "dense" : "dense_" + std::to_string(i));
  std::vector<std::string> shuffled = expected;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(5));
  std::sort(shuffled.begin(), shuffled.end(), natural_less);
  CHECK(shuffled == expected);
}
