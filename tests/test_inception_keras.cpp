// Inception-ResNet-v2 against real Keras: reduced networks built by
// tests/golden/gen_inception_fixtures.py, their weights saved by tf-keras (legacy HDF5, automatic
// names), by Keras 3 (.weights.h5) and in the official file's TF-slim naming, imported into the
// framework's network, which must reproduce Keras's output to a max relative error of 1e-4.
// With GLIMPSE_IRV2_FULL_DIR set (see the generator's --full), the full-size network is compared too.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/hdf5.h"
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
