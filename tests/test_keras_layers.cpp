// Golden tests: every Keras-equivalent layer against files written by real Keras 3 / TensorFlow
// (tests/golden/gen_layer_fixtures.py; format in tests/golden/README.md).
//
// For each case the layer gets Keras's weights and inputs; its outputs must match to a max relative
// error of 1e-5 and the gradients of L = sum_i sum(outputs[i] * loss_weights[i]) to 1e-4.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/hdf5.h"
#include "nn/attention.h"
#include "nn/gru.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/autograd.h"

using namespace glimpse;
using nlohmann::json;

namespace {

struct Fixture {
  explicit Fixture(const std::string& case_name)
      : name(case_name),
        file(H5File::open_read(std::string(GLIMPSE_TEST_DATA) + "/data/layers/" + case_name + ".h5")) {
    config = json::parse(file.read_string_attr("/", "config"));
  }
  bool has(const std::string& path) const { return file.exists(path); }
  Tensor get(const std::string& path) const {
    ArrayData a = file.read(path);
    if (file.dtype_name(path).rfind("int", 0) == 0) {
      std::vector<int32_t> ids(a.data.begin(), a.data.end());
      return Tensor::from_vector(ids, a.shape);
    }
    return Tensor::from_vector(a.data, a.shape);
  }
  Tensor input(int i) const { return get("inputs/" + std::to_string(i)); }
  Tensor weight(int i) const { return get("weights/" + std::to_string(i)); }
  int count(const std::string& group) const {
    return has(group) ? static_cast<int>(file.list(group).size()) : 0;
  }

  std::string name;
  H5File file;
  json config;
};

// max |a - b| / max |b|  (b = Keras's value)
double relative_error(const Tensor& ours, const Tensor& keras) {
  REQUIRE_MESSAGE(ours.shape() == keras.shape(),
                  "shape " << shape_str(ours.shape()) << " vs Keras " << shape_str(keras.shape()));
  std::vector<float> a = ours.to_vector(), b = keras.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  // A reference that is zero up to float noise (e.g. MultiHeadAttention's key bias, whose exact
  // gradient is 0 because softmax ignores a per-query shift) is compared absolutely.
  if (scale < 1e-6) return diff;
  return diff / scale;
}

constexpr double kForwardTolerance = 1e-5;
constexpr double kGradientTolerance = 1e-4;

// Compares outputs, then backpropagates L and compares the gradients of the given inputs and
// weights (indexed as in the file; undefined entries are skipped).
void check_case(const Fixture& fx, const std::vector<Tensor>& outputs,
                const std::vector<Tensor>& inputs, const std::vector<Tensor*>& weights) {
  const int n_out = fx.count("outputs");
  REQUIRE(static_cast<int>(outputs.size()) >= n_out);
  Tensor loss;
  for (int i = 0; i < n_out; ++i) {
    Tensor expected = fx.get("outputs/" + std::to_string(i));
    const double err = relative_error(outputs[i], expected);
    CHECK_MESSAGE(err <= kForwardTolerance, fx.name << " output " << i << ": rel err " << err);
    Tensor term = sum(mul(outputs[i], fx.get("loss_weights/" + std::to_string(i))));
    loss = loss.defined() ? add(loss, term) : term;
  }
  loss.backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string path = "grads/inputs/" + std::to_string(i);
    if (!fx.has(path) || !inputs[i].defined() || inputs[i].dtype() != DType::F32) continue;
    REQUIRE_MESSAGE(inputs[i].grad().defined(), fx.name << ": no gradient for input " << i);
    const double err = relative_error(inputs[i].grad(), fx.get(path));
    CHECK_MESSAGE(err <= kGradientTolerance, fx.name << " d/d input " << i << ": rel err " << err);
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::string path = "grads/weights/" + std::to_string(i);
    if (!fx.has(path) || weights[i] == nullptr) continue;
    REQUIRE_MESSAGE(weights[i]->grad().defined(), fx.name << ": no gradient for weight " << i);
    const double err = relative_error(weights[i]->grad(), fx.get(path));
    CHECK_MESSAGE(err <= kGradientTolerance, fx.name << " d/d weight " << i << ": rel err " << err);
  }
}

Tensor input_requiring_grad(const Fixture& fx, int i) {
  Tensor t = fx.input(i);
  if (t.dtype() == DType::F32) t.set_requires_grad(true);
  return t;
}

Padding padding_of(const json& config) {
  return config.at("padding").get<std::string>() == "same" ? Padding::Same : Padding::Valid;
}

}  // namespace

TEST_CASE("Dense matches Keras") {
  for (const char* name : {"dense", "dense_relu", "dense_3d"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    Generator gen(0);
    const bool use_bias = fx.config.at("use_bias").get<bool>();
    nn::Dense layer("dense", x.shape().back(), fx.config.at("units").get<int64_t>(), gen,
                    nn::activation_from_name(fx.config.at("activation").get<std::string>()),
                    use_bias);
    layer.kernel.copy_(fx.weight(0));
    if (use_bias) layer.bias.copy_(fx.weight(1));
    check_case(fx, {layer.forward(x)}, {x}, {&layer.kernel, use_bias ? &layer.bias : nullptr});
  }
}

TEST_CASE("Conv2D matches Keras: same/valid, strides 1 and 2, odd/even, 1x7 and 7x1") {
  for (const char* name :
       {"conv2d_same_s1_7x7", "conv2d_same_s1_8x8", "conv2d_same_s2_7x7", "conv2d_same_s2_8x8",
        "conv2d_valid_s1_7x7", "conv2d_valid_s1_8x8", "conv2d_valid_s2_7x7_nobias",
        "conv2d_valid_s2_8x8_nobias", "conv2d_same_s2_6x6_nobias", "conv2d_same_s2_5x7_k4",
        "conv2d_1x1", "conv2d_1x7_same", "conv2d_7x1_same"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    Tensor w = fx.weight(0);
    const bool use_bias = fx.config.at("use_bias").get<bool>();
    const int stride = fx.config.at("strides")[0].get<int>();
    REQUIRE(fx.config.at("strides")[1].get<int>() == stride);
    Generator gen(0);
    nn::Conv2D layer("conv2d", w.shape()[2], w.shape()[3], static_cast<int>(w.shape()[0]),
                     static_cast<int>(w.shape()[1]), gen, stride, padding_of(fx.config), use_bias);
    layer.kernel.copy_(w);
    if (use_bias) layer.bias.copy_(fx.weight(1));
    check_case(fx, {layer.forward(x)}, {x}, {&layer.kernel, use_bias ? &layer.bias : nullptr});
  }
}

TEST_CASE("Conv2D matches Keras with dilation_rate and groups") {
  for (const char* name : {"conv2d_dilation2_same", "conv2d_dilation_3x2_valid",
                           "conv2d_dilation2_same_even", "conv2d_groups2_same_s2",
                           "conv2d_groups3_valid_nobias"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    Tensor w = fx.weight(0);
    const bool use_bias = fx.config.at("use_bias").get<bool>();
    const int stride = fx.config.at("strides")[0].get<int>();
    REQUIRE(fx.config.at("strides")[1].get<int>() == stride);
    const int groups = fx.config.at("groups").get<int>();
    Generator gen(0);
    nn::Conv2D layer("conv2d", x.shape()[3], w.shape()[3], static_cast<int>(w.shape()[0]),
                     static_cast<int>(w.shape()[1]), gen, stride, padding_of(fx.config), use_bias,
                     nn::Activation::None, fx.config.at("dilation_rate")[0].get<int>(),
                     fx.config.at("dilation_rate")[1].get<int>(), groups);
    REQUIRE(layer.kernel.shape() == w.shape());
    layer.kernel.copy_(w);
    if (use_bias) layer.bias.copy_(fx.weight(1));
    check_case(fx, {layer.forward(x)}, {x}, {&layer.kernel, use_bias ? &layer.bias : nullptr});
  }
}

TEST_CASE("DepthwiseConv2D matches Keras: same/valid, strides, multipliers, dilation") {
  for (const char* name : {"depthwise_same_s1", "depthwise_valid_s2_m2",
                           "depthwise_same_s2_m3_nobias", "depthwise_dilation2_same_m2"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    Tensor w = fx.weight(0);
    const bool use_bias = fx.config.at("use_bias").get<bool>();
    const int stride = fx.config.at("strides")[0].get<int>();
    REQUIRE(fx.config.at("strides")[1].get<int>() == stride);
    Generator gen(0);
    nn::DepthwiseConv2D layer(
        "depthwise_conv2d", x.shape()[3], static_cast<int>(w.shape()[0]),
        static_cast<int>(w.shape()[1]), gen, stride, padding_of(fx.config),
        fx.config.at("depth_multiplier").get<int64_t>(), use_bias, nn::Activation::None,
        fx.config.at("dilation_rate")[0].get<int>(), fx.config.at("dilation_rate")[1].get<int>());
    REQUIRE(layer.depthwise_kernel.shape() == w.shape());
    layer.depthwise_kernel.copy_(w);
    if (use_bias) layer.bias.copy_(fx.weight(1));
    check_case(fx, {layer.forward(x)}, {x},
               {&layer.depthwise_kernel, use_bias ? &layer.bias : nullptr});
    // Inference runs the fused form (bias in the convolution's epilogue): the same numbers.
    NoGradGuard no_grad;
    const double err = relative_error(layer.forward(fx.input(0)), fx.get("outputs/0"));
    CHECK_MESSAGE(err <= kForwardTolerance, name << " inference: rel err " << err);
  }
}

TEST_CASE("BatchNormalization matches Keras in inference and training mode") {
  for (const char* name : {"batchnorm_inference", "batchnorm_training", "batchnorm_noscale"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    const bool scale = fx.config.at("scale").get<bool>();
    const bool training = fx.config.value("training", false);
    nn::BatchNormalization bn("batch_normalization", x.shape().back(), scale, true,
                              fx.config.at("momentum").get<double>(),
                              fx.config.at("epsilon").get<double>());
    int w = 0;
    if (scale) bn.gamma.copy_(fx.weight(w++));
    bn.beta.copy_(fx.weight(w++));
    bn.moving_mean.copy_(fx.weight(w++));
    bn.moving_variance.copy_(fx.weight(w++));
    bn.train(training);
    Tensor y = bn.forward(x);
    std::vector<Tensor*> weights;
    if (scale) weights.push_back(&bn.gamma);
    weights.push_back(&bn.beta);
    check_case(fx, {y}, {x}, weights);
    if (fx.has("updated_weights")) {
      const int base = scale ? 2 : 1;
      CHECK(relative_error(bn.moving_mean, fx.get("updated_weights/" + std::to_string(base))) <= 1e-5);
      CHECK(relative_error(bn.moving_variance,
                           fx.get("updated_weights/" + std::to_string(base + 1))) <= 1e-5);
    }
  }
}

TEST_CASE("a frozen BatchNormalization runs in inference mode even while training") {
  Fixture fx("batchnorm_inference");
  nn::BatchNormalization bn("bn", fx.input(0).shape().back());
  bn.gamma.copy_(fx.weight(0));
  bn.beta.copy_(fx.weight(1));
  bn.moving_mean.copy_(fx.weight(2));
  bn.moving_variance.copy_(fx.weight(3));
  bn.train(true);
  bn.set_trainable(false);
  CHECK(relative_error(bn.forward(fx.input(0)), fx.get("outputs/0")) <= 1e-5);
  CHECK(!bn.gamma.requires_grad());
}

TEST_CASE("pooling matches Keras") {
  for (const char* name : {"maxpool2d_3x3_s1_same", "maxpool2d_3x3_s2_valid",
                           "maxpool2d_2x2_s2_same_odd", "averagepool2d_3x3_s1_same",
                           "averagepool2d_3x3_s2_valid", "averagepool2d_2x2_s2_same_odd"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    const int pool = fx.config.at("pool_size")[0].get<int>();
    const int stride = fx.config.at("strides")[0].get<int>();
    const bool is_max = std::string(name).rfind("max", 0) == 0;
    Tensor y = is_max ? nn::max_pooling2d(x, pool, stride, padding_of(fx.config))
                      : nn::average_pooling2d(x, pool, stride, padding_of(fx.config));
    check_case(fx, {y}, {x}, {});
  }
  Fixture fx("global_average_pooling2d");
  Tensor x = input_requiring_grad(fx, 0);
  check_case(fx, {nn::global_average_pooling2d(x)}, {x}, {});
}

TEST_CASE("activations match Keras") {
  for (auto [name, act] : {std::pair{"activation_relu", nn::Activation::Relu},
                           std::pair{"activation_sigmoid", nn::Activation::Sigmoid},
                           std::pair{"activation_tanh", nn::Activation::Tanh},
                           std::pair{"activation_softmax", nn::Activation::Softmax}}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    check_case(fx, {nn::apply_activation(x, act)}, {x}, {});
  }
}

TEST_CASE("Embedding and LayerNormalization match Keras") {
  {
    Fixture fx("embedding");
    Tensor ids = fx.input(0);
    Tensor table = fx.weight(0);
    Generator gen(0);
    nn::Embedding layer("embedding", table.shape()[0], table.shape()[1], gen);
    layer.embeddings.copy_(table);
    check_case(fx, {layer.forward(ids)}, {ids}, {&layer.embeddings});
  }
  {
    Fixture fx("layernorm");
    Tensor x = input_requiring_grad(fx, 0);
    nn::LayerNormalization layer("layer_normalization", x.shape().back(),
                                 fx.config.at("epsilon").get<double>());
    layer.gamma.copy_(fx.weight(0));
    layer.beta.copy_(fx.weight(1));
    check_case(fx, {layer.forward(x)}, {x}, {&layer.gamma, &layer.beta});
  }
}

TEST_CASE("GRU matches Keras: sequences + state, zero or given initial state, T = 1 and 24") {
  for (const char* name : {"gru_zero_state_T1", "gru_zero_state_T24", "gru_init_state_T1",
                           "gru_init_state_T24"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    Tensor h0 = fx.count("inputs") > 1 ? input_requiring_grad(fx, 1) : Tensor();
    Generator gen(0);
    nn::GRU gru("gru", x.shape()[2], fx.config.at("units").get<int64_t>(), gen);
    gru.kernel.copy_(fx.weight(0));
    gru.recurrent_kernel.copy_(fx.weight(1));
    gru.bias.copy_(fx.weight(2));
    auto [seq, state] = gru.forward(x, h0);
    check_case(fx, {seq, state}, {x, h0}, {&gru.kernel, &gru.recurrent_kernel, &gru.bias});
  }
}

TEST_CASE("GRU variants match Keras: reset_after=False, go_backwards, both") {
  for (const char* name : {"gru_reset_before_T1", "gru_reset_before_T24", "gru_go_backwards_T24",
                           "gru_reset_before_go_backwards_T24"}) {
    Fixture fx(name);
    Tensor x = input_requiring_grad(fx, 0);
    Tensor h0 = input_requiring_grad(fx, 1);
    GruOptions options;
    options.reset_after = fx.config.at("reset_after").get<bool>();
    options.go_backwards = fx.config.at("go_backwards").get<bool>();
    Generator gen(0);
    nn::GRU gru("gru", x.shape()[2], fx.config.at("units").get<int64_t>(), gen, options);
    gru.kernel.copy_(fx.weight(0));
    gru.recurrent_kernel.copy_(fx.weight(1));
    gru.bias.copy_(fx.weight(2));  // [3U] without reset_after: copy_ checks the shape
    auto [seq, state] = gru.forward(x, h0);
    check_case(fx, {seq, state}, {x, h0}, {&gru.kernel, &gru.recurrent_kernel, &gru.bias});
  }
}

TEST_CASE("Bidirectional(GRU) matches Keras: merge modes, sequences or last, states, reset_after") {
  for (const char* name : {"bidirectional_gru_concat", "bidirectional_gru_sum",
                           "bidirectional_gru_mul", "bidirectional_gru_ave",
                           "bidirectional_gru_last_concat",
                           "bidirectional_gru_reset_before_concat"}) {
    Fixture fx(name);
    const json& gru_config = fx.config.at("layer").at("config");
    const std::string mode = fx.config.at("merge_mode").get<std::string>();
    nn::MergeMode merge = nn::MergeMode::Concat;
    for (nn::MergeMode m : {nn::MergeMode::Concat, nn::MergeMode::Sum, nn::MergeMode::Mul,
                            nn::MergeMode::Ave})
      if (mode == nn::merge_mode_name(m)) merge = m;
    REQUIRE(mode == nn::merge_mode_name(merge));
    GruOptions options;
    options.reset_after = gru_config.at("reset_after").get<bool>();
    Tensor x = input_requiring_grad(fx, 0);
    const bool with_states = fx.count("inputs") > 1;
    Tensor h0_forward = with_states ? input_requiring_grad(fx, 1) : Tensor();
    Tensor h0_backward = with_states ? input_requiring_grad(fx, 2) : Tensor();
    Generator gen(0);
    nn::Bidirectional layer("bidirectional", x.shape()[2], gru_config.at("units").get<int64_t>(),
                            gen, merge, options);
    // The file's weights in Keras order, matched by their Keras path to ours.
    auto named = layer.named_parameters();
    REQUIRE(named.size() == 6);
    for (int i = 0; i < 6; ++i) {
      std::string keras_name = fx.file.read_string_attr("weights/" + std::to_string(i), "name");
      const std::string cell = "/gru_cell";
      keras_name.erase(keras_name.find(cell), cell.size());
      CHECK(named[i].name == keras_name);
      named[i].tensor->copy_(fx.weight(i));
    }
    nn::BidirectionalOutput out = layer.forward(x, h0_forward, h0_backward);
    Tensor first = gru_config.at("return_sequences").get<bool>() ? out.sequence : out.last;
    std::vector<Tensor*> weights;
    for (auto& w : named) weights.push_back(w.tensor);
    check_case(fx, {first, out.forward_state, out.backward_state}, {x, h0_forward, h0_backward},
               weights);
  }
}

TEST_CASE("Bidirectional: half-given initial states are refused") {
  Generator gen(0);
  nn::Bidirectional layer("bidirectional", 3, 2, gen);
  Tensor x = Tensor::zeros({1, 4, 3});
  CHECK_THROWS_WITH_AS(layer.forward(x, Tensor::zeros({1, 2})),
                       doctest::Contains("both initial states"), std::invalid_argument);
}

TEST_CASE("GRU single steps reproduce the sequence (the inference loop's contract)") {
  Fixture fx("gru_init_state_T24");
  Generator gen(0);
  nn::GRU gru("gru", 5, 7, gen);
  gru.kernel.copy_(fx.weight(0));
  gru.recurrent_kernel.copy_(fx.weight(1));
  gru.bias.copy_(fx.weight(2));
  Tensor x = fx.input(0), h = fx.input(1);
  for (int64_t t = 0; t < x.shape()[1]; ++t) h = gru.forward(slice(x, 1, t, t + 1), h).second;
  CHECK(relative_error(h, fx.get("outputs/1")) <= 1e-5);
}

TEST_CASE("Attention matches Keras: plain, with key, use_scale, causal, returning weights") {
  for (const char* name : {"attention_plain", "attention_with_key", "attention_use_scale",
                           "attention_causal", "attention_scores"}) {
    Fixture fx(name);
    json call = json::parse(fx.file.read_string_attr("/", "call_args"));
    const int n_in = fx.count("inputs");
    Tensor q = input_requiring_grad(fx, 0), v = input_requiring_grad(fx, 1);
    Tensor k = n_in > 2 ? input_requiring_grad(fx, 2) : Tensor();
    const bool use_scale = fx.config.value("use_scale", false);
    nn::Attention layer("attention", use_scale);
    if (use_scale) layer.scale.copy_(fx.weight(0));
    nn::AttentionResult r = layer.forward(q, v, k, call.value("use_causal_mask", false));
    check_case(fx, {r.output, r.weights}, {q, v, k}, {use_scale ? &layer.scale : nullptr});
  }
}

TEST_CASE("MultiHeadAttention matches Keras, with and without a causal mask") {
  for (const char* name : {"multi_head_attention", "multi_head_attention_causal",
                           "multi_head_attention_causal_noscores"}) {
    Fixture fx(name);
    json call = json::parse(fx.file.read_string_attr("/", "call_args"));
    Tensor q = input_requiring_grad(fx, 0);
    const bool self_attention = fx.count("inputs") == 1;
    Tensor v = self_attention ? q : input_requiring_grad(fx, 1);
    Tensor qk = fx.weight(0);
    Generator gen(0);
    nn::MultiHeadAttention layer("multi_head_attention", q.shape()[2], v.shape()[2], qk.shape()[1],
                                 qk.shape()[2], gen, fx.weight(4).shape()[2]);
    std::vector<Tensor*> ws{&layer.query_kernel, &layer.query_bias,  &layer.key_kernel,
                            &layer.key_bias,     &layer.value_kernel, &layer.value_bias,
                            &layer.output_kernel, &layer.output_bias};
    for (size_t i = 0; i < ws.size(); ++i) ws[i]->copy_(fx.weight(static_cast<int>(i)));
    nn::AttentionResult r = layer.forward(q, v, Tensor(), call.value("use_causal_mask", false));
    check_case(fx, {r.output, r.weights}, self_attention ? std::vector<Tensor>{q} : std::vector<Tensor>{q, v},
               ws);
  }
}

TEST_CASE("masked sparse categorical cross-entropy matches Keras") {
  Fixture fx("sparse_categorical_crossentropy_masked");
  Tensor logits = input_requiring_grad(fx, 0);
  Tensor targets = fx.input(1);
  check_case(fx, {nn::masked_sparse_categorical_crossentropy(logits, targets)}, {logits}, {});
}

TEST_CASE("three Adam and SGD-momentum steps match Keras") {
  for (const char* name : {"adam_three_steps", "sgd_momentum_three_steps"}) {
    Fixture fx(name);
    Tensor x = fx.input(0), target = fx.input(1);
    Generator gen(0);
    nn::Dense hidden("hidden", x.shape()[1], fx.weight(0).shape()[1], gen, nn::Activation::Relu);
    nn::Dense out("out", fx.weight(2).shape()[0], fx.weight(2).shape()[1], gen);
    std::vector<Tensor*> ws{&hidden.kernel, &hidden.bias, &out.kernel, &out.bias};
    std::vector<nn::NamedTensor> named;
    for (size_t i = 0; i < ws.size(); ++i) {
      ws[i]->copy_(fx.weight(static_cast<int>(i)));
      named.push_back({"w" + std::to_string(i), ws[i], false});
    }
    std::unique_ptr<nn::Optimizer> opt;
    if (std::string(name) == "adam_three_steps")
      opt = std::make_unique<nn::Adam>(named, std::make_shared<nn::ConstantLr>(1e-3));
    else
      opt = std::make_unique<nn::SGD>(named, std::make_shared<nn::ConstantLr>(0.1), 0.9);
    std::vector<float> losses = fx.get("step_losses").to_vector();
    for (int step = 1; step <= 3; ++step) {
      opt->zero_grad();
      Tensor loss = nn::mean_squared_error(out.forward(hidden.forward(x)), target);
      CHECK(loss.item() == doctest::Approx(losses[step - 1]).epsilon(1e-5));
      loss.backward();
      opt->step();
      for (size_t i = 0; i < ws.size(); ++i) {
        const double err = relative_error(
            *ws[i], fx.get("steps/" + std::to_string(step) + "/" + std::to_string(i)));
        CHECK_MESSAGE(err <= 1e-5, name << " step " << step << " weight " << i << ": " << err);
      }
    }
  }
}

TEST_CASE("the notebook decoder (Embedding, GRU, Attention, Add, LayerNorm, Dense) matches Keras") {
  Fixture fx("captioner_decoder_step");
  Tensor tokens = fx.input(0);
  Tensor features = input_requiring_grad(fx, 1);
  Tensor table = fx.weight(0);
  const int64_t V = table.shape()[0], D = table.shape()[1];
  const int64_t U = fx.weight(2).shape()[0];
  Generator gen(0);
  nn::Embedding embedding("embedding", V, D, gen);
  nn::GRU gru("gru", D, U, gen);
  nn::Attention attention("attention");
  nn::LayerNormalization norm("layer_norm", U);
  nn::Dense logits_layer("logits", U, V, gen);
  std::vector<Tensor*> ws{&embedding.embeddings, &gru.kernel, &gru.recurrent_kernel, &gru.bias,
                          &norm.gamma, &norm.beta, &logits_layer.kernel, &logits_layer.bias};
  for (size_t i = 0; i < ws.size(); ++i) ws[i]->copy_(fx.weight(static_cast<int>(i)));
  auto [seq, state] = gru.forward(embedding.forward(tokens));
  Tensor context = attention.forward(seq, features).output;
  Tensor logits = logits_layer.forward(norm.forward(add(seq, context)));
  check_case(fx, {logits}, {tokens, features}, ws);
}
