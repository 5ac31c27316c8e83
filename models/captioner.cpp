// The captioner (see captioner.h).
#include "models/captioner.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace glimpse::models {

CaptionerConfig CaptionerConfig::notebook() { return CaptionerConfig{}; }

CaptionerConfig CaptionerConfig::tiny_shapes() {
  CaptionerConfig c;
  c.encoder = "tiny";
  c.image_size = 128;
  c.vocab_size = 64;
  c.max_caption_len = 24;
  c.embedding_dim = 64;
  c.units = 128;
  c.freeze_encoder = false;  // no pretrained weights: the small encoder learns with the decoder
  c.position_embedding = true;
  return c;
}

nlohmann::json CaptionerConfig::to_json() const {
  return {{"encoder", encoder},
          {"image_size", image_size},
          {"vocab_size", vocab_size},
          {"max_caption_len", max_caption_len},
          {"embedding_dim", embedding_dim},
          {"units", units},
          {"freeze_encoder", freeze_encoder},
          {"position_embedding", position_embedding},
          {"pixel_scaling", pixel_scaling}};
}

CaptionerConfig CaptionerConfig::from_json(const nlohmann::json& j) {
  CaptionerConfig c;
  try {
    c.encoder = j.at("encoder").get<std::string>();
    c.image_size = j.at("image_size").get<int>();
    c.vocab_size = j.at("vocab_size").get<int64_t>();
    c.max_caption_len = j.at("max_caption_len").get<int64_t>();
    c.embedding_dim = j.at("embedding_dim").get<int64_t>();
    c.units = j.at("units").get<int64_t>();
    c.freeze_encoder = j.at("freeze_encoder").get<bool>();
    c.position_embedding = j.value("position_embedding", false);
    c.pixel_scaling = j.value("pixel_scaling", std::string("inception"));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("CaptionerConfig: bad model config: ") + e.what());
  }
  return c;
}

namespace {
InceptionConfig encoder_config(const CaptionerConfig& c) {
  InceptionConfig e;
  if (c.encoder == "tiny") e = InceptionConfig::tiny();
  else if (c.encoder == "inception_resnet_v2") e = InceptionConfig::full();
  else
    throw std::invalid_argument("Captioner: unknown encoder '" + c.encoder +
                                "' (expected tiny or inception_resnet_v2)");
  e.image_size = c.image_size;
  return e;
}
}  // namespace

Captioner::Captioner(const CaptionerConfig& config, uint64_t seed)
    : nn::Module("captioner"), config_(config) {
  if (config.vocab_size < 3 || config.units <= 0 || config.embedding_dim <= 0)
    throw std::invalid_argument("Captioner: vocab_size >= 3 and positive sizes are required");
  Generator gen(seed);
  register_module(encoder, std::make_unique<InceptionResNetV2>(encoder_config(config), gen));
  grid_cells_ = encoder->grid_size() * encoder->grid_size();
  register_module(feature_dense, std::make_unique<nn::Dense>("feature_dense",
                                                             encoder->output_channels(),
                                                             config.units, gen, nn::Activation::Relu));
  register_module(embedding, std::make_unique<nn::Embedding>("embedding", config.vocab_size,
                                                             config.embedding_dim, gen));
  register_module(gru, std::make_unique<nn::GRU>("gru", config.embedding_dim, config.units, gen));
  register_module(attention, std::make_unique<nn::Attention>("attention"));
  register_module(layer_norm, std::make_unique<nn::LayerNormalization>("layer_normalization",
                                                                       config.units));
  register_module(output_dense, std::make_unique<nn::Dense>("output_dense", config.units,
                                                            config.vocab_size, gen));
  if (config.position_embedding)
    register_parameter("position_embedding", positions,
                       random_uniform({grid_cells_, config.units}, -0.05, 0.05, gen));
  if (config.freeze_encoder) encoder->set_trainable(false);
}

Tensor Captioner::encoder_features(const Tensor& images) {
  Tensor f = encoder->forward(images);  // [B, h, w, C]
  return reshape(f, {f.shape()[0], f.shape()[1] * f.shape()[2], f.shape()[3]});
}

Tensor Captioner::project_features(const Tensor& raw) {
  if (raw.rank() != 3 || raw.shape()[1] != grid_cells_ ||
      raw.shape()[2] != encoder->output_channels())
    throw std::invalid_argument("Captioner: encoder features must be [B, " +
                                std::to_string(grid_cells_) + ", " +
                                std::to_string(encoder->output_channels()) + "], got " +
                                shape_str(raw.shape()));
  Tensor features = feature_dense->forward(raw);
  if (config_.position_embedding) features = add(features, positions);
  return features;
}

Tensor Captioner::encode(const Tensor& images) { return project_features(encoder_features(images)); }

Tensor Captioner::initial_state(int64_t batch) const {
  return Tensor::zeros({batch, config_.units}, DType::F32, gru->kernel.device());
}

Tensor Captioner::decode_from(const Tensor& features, const Tensor& embedded, const Tensor& state,
                              Tensor* attention_out, Tensor* state_out) {
  auto [sequence, new_state] = gru->forward(embedded, state);
  nn::AttentionResult att = attention->forward(sequence, features);
  Tensor x = layer_norm->forward(add(sequence, att.output));
  if (attention_out) *attention_out = att.weights;
  if (state_out) *state_out = new_state;
  return output_dense->forward(x);
}

Tensor Captioner::decode(const Tensor& features, const Tensor& tokens, Tensor* attention_out) {
  if (tokens.rank() != 2 || tokens.dtype() != DType::I32)
    throw std::invalid_argument("Captioner::decode: tokens must be int32 [B, T], got " +
                                shape_str(tokens.shape()));
  if (features.rank() != 3 || features.shape()[0] != tokens.shape()[0])
    throw std::invalid_argument("Captioner::decode: features " + shape_str(features.shape()) +
                                " do not match tokens " + shape_str(tokens.shape()));
  return decode_from(features, embedding->forward(tokens), initial_state(tokens.shape()[0]),
                     attention_out, nullptr);
}

Captioner::Step Captioner::step(const Tensor& features, const Tensor& tokens, const Tensor& state) {
  if (tokens.rank() != 1 || tokens.dtype() != DType::I32)
    throw std::invalid_argument("Captioner::step: tokens must be int32 [B], got " +
                                shape_str(tokens.shape()));
  Step out;
  Tensor attention_weights, new_state;
  Tensor embedded = embedding->forward(reshape(tokens, {tokens.shape()[0], 1}));
  Tensor logits = decode_from(features, embedded, state, &attention_weights, &new_state);
  out.logits = reshape(logits, {tokens.shape()[0], config_.vocab_size});
  out.state = new_state;
  out.attention = reshape(attention_weights, {tokens.shape()[0], grid_cells_});
  return out;
}

}  // namespace glimpse::models
