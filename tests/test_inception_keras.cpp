// Inception-ResNet-v2 against real Keras: reduced networks built by
// tests/golden/gen_inception_fixtures.py, their weights saved by tf-keras (legacy HDF5, automatic
// names), by Keras 3 (.weights.h5) and in the official file's TF-slim naming, imported into the
// framework's network, which must reproduce Keras's output to a max relative error of 1e-4.
// With GLIMPSE_IRV2_FULL_DIR set (see the generator's --full), the full-size network is compared too.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/hdf5.h"
#include "io/keras_weights.h"
#include "models/inception_resnet_v2.h"
#include "models/keras_import.h"
#include "tensor/autograd.h"

using namespace glimpse;
using namespace glimpse::models;

namespace {
const std::string kDir = std::string(GLIMPSE_TEST_DATA) + "/data/inception/";

InceptionConfig config_from(const H5File& io) {
  nlohmann::json j = nlohmann::json::parse(io.read_string_attr("/", "config"));
  InceptionConfig c;
  c.image_size = j.at("image_size").get<int>();
  c.width_divisor = j.at("width_divisor").get<int>();
  c.repeats_block35 = j.at("repeats_block35").get<int>();
  c.repeats_block17 = j.at("repeats_block17").get<int>();
  c.repeats_block8 = j.at("repeats_block8").get<int>();
  c.valid_reductions = j.at("valid_reductions").get<bool>();
  return c;
}

double rel_err(const std::vector<float>& ours, const std::vector<float>& keras) {
  REQUIRE(ours.size() == keras.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    diff = std::max(diff, std::fabs(double(ours[i]) - keras[i]));
    scale = std::max(scale, std::fabs(double(keras[i])));
  }
  return diff / std::max(scale, 1e-30);
}

// Imports `weights` into a fresh network of the fixture's config and compares with its output.
void check_import(const std::string& io_file, const std::string& weights_file,
                  const std::string& expected_match) {
  H5File io = H5File::open_read(kDir + io_file);
  InceptionConfig config = config_from(io);
  Generator gen(123);
  InceptionResNetV2 net(config, gen);
  KerasImportReport report = import_keras_encoder_weights(net, kDir + weights_file);
  CHECK(report.matched_by == expected_match);
  ArrayData input = io.read("input");
  ArrayData expected = io.read("output");
  net.eval();
  NoGradGuard no_grad;
  Tensor y = net.forward(Tensor::from_vector(input.data, input.shape));
  CHECK(y.shape() == Shape(expected.shape));
  const double err = rel_err(y.to_vector(), expected.data);
  CHECK_MESSAGE(err <= 1e-4, weights_file << ": max relative error " << err);
  // With the BatchNorms folded into the convolutions (the frozen encoder's inference path).
  net.fold_batch_norm();
  Tensor folded = net.forward(Tensor::from_vector(input.data, input.shape));
  CHECK(net.batch_norm_folded());
  const double folded_err = rel_err(folded.to_vector(), expected.data);
  CHECK_MESSAGE(folded_err <= 1e-4, weights_file << " folded: max relative error " << folded_err);
  CHECK(rel_err(folded.to_vector(), y.to_vector()) <= 1e-5);
}
}  // namespace

TEST_CASE("tiny network from a tf-keras legacy file (automatic names) matches Keras") {
  check_import("tiny_io.h5", "tiny_model.h5", "name");
}

TEST_CASE("tiny network from a Keras 3 .weights.h5 matches Keras") {
  check_import("tiny_io.h5", "tiny_model.weights.h5", "name");
}

TEST_CASE("tiny network from TF-slim-named files (the official file's style) matches Keras") {
  check_import("tiny_io.h5", "tiny_slim_names.h5", "slim-name");
  // The same weights with layer_names in Keras's topological order, as the real file lists them.
  check_import("tiny_io.h5", "tiny_slim_names_keras_order.h5", "slim-name");
}

TEST_CASE("reduced network with Keras's VALID reductions matches Keras") {
  // Padding changes no weight shape: the tiny weights serve the VALID variant.
  check_import("reduced_valid_io.h5", "tiny_model.h5", "name");
}

TEST_CASE("a file with wrong shapes and a missing layer is rejected whole, listing every offender") {
  H5File io = H5File::open_read(kDir + "tiny_io.h5");
  Generator gen(1);
  InceptionResNetV2 net(config_from(io), gen);
  std::vector<float> before = net.layers_in_order()[0]->conv->kernel.to_vector();
  try {
    import_keras_encoder_weights(net, kDir + "tiny_broken.h5");
    FAIL("expected an error");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    // Exactly the three planted faults, each named.
    CHECK(msg.find("nothing loaded") != std::string::npos);
    CHECK(msg.find("3 problems") != std::string::npos);
    CHECK(msg.find("conv2d_4") != std::string::npos);
    CHECK(msg.find("block17_1_conv") != std::string::npos);
    CHECK(msg.find("missing layer batch_normalization_7") != std::string::npos);
  }
  CHECK(net.layers_in_order()[0]->conv->kernel.to_vector() == before);
}

// ---- Matching by structure (a model built twice in one session: every automatic name offset)

TEST_CASE("the encoder's Keras layer order is the order real Keras files list layers in") {
  Generator gen(1);
  InceptionResNetV2 tiny(InceptionConfig::tiny(), gen);
  const std::vector<std::string> order = keras_weighted_layer_names(tiny);
  // tf_keras's layer_names is model.layers: the same names in the same order (not creation order).
  std::vector<std::string> legacy;
  for (const KerasLayerWeights& l : read_keras_weights(kDir + "tiny_model.h5").layers)
    legacy.push_back(l.layer_name);
  CHECK(order == legacy);
  std::vector<std::string> creation;
  for (ConvBN* unit : tiny.layers_in_order()) {
    creation.push_back(unit->conv->name());
    if (unit->bn) creation.push_back(unit->bn->name());
  }
  CHECK(order != creation);  // else this case would not tell the two orders apart
  // Keras 3 numbers each class's groups in model.layers order; the real name is in vars/name.
  std::map<std::string, std::string> keras3_names;
  for (const KerasLayerWeights& l : read_keras_weights(kDir + "tiny_model.weights.h5").layers)
    keras3_names[l.group_path] = l.layer_name;
  int conv = 0, bn = 0;
  for (const std::string& name : order) {
    const bool is_bn = name.rfind("batch_normalization", 0) == 0 || name == "conv_7b_bn";
    int& k = is_bn ? bn : conv;
    const std::string group = std::string("layers/") + (is_bn ? "batch_normalization" : "conv2d") +
                              (k ? "_" + std::to_string(k) : "");
    ++k;
    CHECK_MESSAGE(keras3_names[group] == name, group);
  }
  CHECK(keras3_names.size() == order.size());
}

TEST_CASE("the full network's Keras layer order is keras.applications' model.layers order") {
  // 10/20/10 residual blocks: the depth rule must hold across long chains of repeated blocks.
  std::ifstream in(kDir + "full_layer_order.json");
  REQUIRE(in);
  const std::vector<std::string> keras_order =
      nlohmann::json::parse(in).at("layers").get<std::vector<std::string>>();
  Generator gen(1);
  InceptionResNetV2 full(InceptionConfig::full(), gen);
  const std::vector<std::string> order = keras_weighted_layer_names(full);
  REQUIRE(order.size() == keras_order.size());
  std::string first_difference;
  for (size_t i = 0; i < order.size() && first_difference.empty(); ++i)
    if (order[i] != keras_order[i])
      first_difference = "at " + std::to_string(i) + ": " + order[i] + ", Keras " + keras_order[i];
  CHECK_MESSAGE(first_difference.empty(), first_difference);
}

TEST_CASE("files of a model built twice (offset names) load by structure and match Keras") {
  // Keras's own loaders load both into a fresh model (checked by the generator).
  check_import("twice_io.h5", "twice_model.h5", "structure");
  check_import("twice_io.h5", "twice_model.weights.h5", "structure");
  // Names present: still matched by name.
  check_import("tiny_io.h5", "tiny_model.weights.h5", "name");
}

namespace {
// The import's error for `weights_file` into a fresh encoder of `io_file`'s config; the encoder
// must be left untouched.
std::string import_error(const std::string& io_file, const std::string& weights_file) {
  H5File io = H5File::open_read(kDir + io_file);
  Generator gen(7);
  InceptionResNetV2 net(config_from(io), gen);
  std::vector<float> before = net.layers_in_order().back()->bn->moving_variance.to_vector();
  std::string message;
  try {
    import_keras_encoder_weights(net, kDir + weights_file);
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  CHECK(net.layers_in_order().back()->bn->moving_variance.to_vector() == before);
  CHECK_MESSAGE(message.find("nothing loaded") != std::string::npos, message);
  return message;
}
}  // namespace

TEST_CASE("files of another config or truncated are refused, naming the first mismatch") {
  // Keras refuses each of these too (checked by the generator). The twice config has 4 filters
  // where tiny has 8 first in Conv2d_2b_3x3, the 5th layer with weights in Keras's order.
  for (const char* file : {"twice_model.h5", "twice_model.weights.h5"}) {
    const std::string message = import_error("tiny_io.h5", file);
    CHECK_MESSAGE(message.find("matching by structure") != std::string::npos, message);
    CHECK_MESSAGE(message.find("first mismatch") != std::string::npos, message);
    CHECK_MESSAGE(message.find("conv2d_2 (Conv2D, TF-slim Conv2d_2b_3x3)") != std::string::npos,
                  message);
    CHECK_MESSAGE(message.find("[3, 3, 4, 4], expected [3, 3, 4, 8]") != std::string::npos,
                  message);
  }
  const std::string truncated = import_error("twice_io.h5", "twice_truncated.h5");
  CHECK_MESSAGE(truncated.find("ends after 108 layers with weights") != std::string::npos,
                truncated);
  CHECK_MESSAGE(truncated.find("conv_7b (Conv2D") != std::string::npos, truncated);
  // The tiny file in the larger twice encoder: most names are the encoder's, so every fault is
  // listed (31 layers missing, the second residual blocks among them).
  const std::string tiny = import_error("twice_io.h5", "tiny_model.h5");
  CHECK_MESSAGE(tiny.find("matching by name") != std::string::npos, tiny);
  CHECK_MESSAGE(tiny.find("missing layer block35_2_conv") != std::string::npos, tiny);
}

TEST_CASE("full-size Inception-ResNet-v2 against Keras (optional: GLIMPSE_IRV2_FULL_DIR)") {
  const char* dir = std::getenv("GLIMPSE_IRV2_FULL_DIR");
  if (!dir) {
    MESSAGE("skipped: set GLIMPSE_IRV2_FULL_DIR to a directory written by gen_inception_fixtures.py --full");
    return;
  }
  Generator gen(1);
  InceptionResNetV2 net(InceptionConfig::full(), gen);
  const std::string d(dir);
  import_keras_encoder_weights(net, d + "/full_model.h5");
  H5File io = H5File::open_read(d + "/full_io.h5");
  ArrayData input = io.read("input"), expected = io.read("output");
  net.eval();
  NoGradGuard no_grad;
  Tensor y = net.forward(Tensor::from_vector(input.data, input.shape));
  CHECK(rel_err(y.to_vector(), expected.data) <= 1e-4);
  net.fold_batch_norm();
  CHECK(rel_err(net.forward(Tensor::from_vector(input.data, input.shape)).to_vector(),
                expected.data) <= 1e-4);
}
