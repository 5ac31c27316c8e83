// The captioner (see captioner.h).
#include "models/captioner.h"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "nn/losses.h"

namespace glimpse::models {

std::string to_string(EncoderKind encoder) {
  switch (encoder) {
    case EncoderKind::Tiny: return "tiny";
    case EncoderKind::InceptionResNetV2: return "inception_resnet_v2";
  }
  throw std::invalid_argument("to_string: not an EncoderKind value");
}

std::string to_string(DecoderKind decoder) {
  switch (decoder) {
    case DecoderKind::Gru: return "gru";
    case DecoderKind::Transformer: return "transformer";
  }
  throw std::invalid_argument("to_string: not a DecoderKind value");
}

EncoderKind parse_encoder(const std::string& name) {
  if (name == "tiny") return EncoderKind::Tiny;
  if (name == "inception_resnet_v2") return EncoderKind::InceptionResNetV2;
  throw std::invalid_argument("unknown encoder '" + name + "' (expected tiny or inception_resnet_v2)");
}

DecoderKind parse_decoder(const std::string& name) {
  if (name == "gru") return DecoderKind::Gru;
  if (name == "transformer") return DecoderKind::Transformer;
  throw std::invalid_argument("unknown decoder '" + name + "' (expected gru or transformer)");
}

CaptionerConfig CaptionerConfig::notebook() { return CaptionerConfig{}; }

CaptionerConfig CaptionerConfig::tiny_shapes() {
  CaptionerConfig c;
  c.encoder = EncoderKind::Tiny;
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
  // The file format spells the enums as strings (docs/checkpoint-format.md).
  return {{"encoder", to_string(encoder)},
          {"image_size", image_size},
          {"vocab_size", vocab_size},
          {"max_caption_len", max_caption_len},
          {"embedding_dim", embedding_dim},
          {"units", units},
          {"freeze_encoder", freeze_encoder},
          {"position_embedding", position_embedding},
          {"pixel_scaling", to_string(pixel_scaling)},
          {"decoder", to_string(decoder)},
          {"input_feeding", input_feeding},
          {"decoder_layers", decoder_layers},
          {"heads", heads},
          {"ff_dim", ff_dim}};
}

namespace {
// Typed, range-checked reads of one model_config key. The messages name the key and never quote
// the JSON library, whose text ("[json.exception.type_error.302] ...") means nothing to a user.
std::invalid_argument config_error(const std::string& key, const std::string& why) {
  return std::invalid_argument("model_config: " + key + " " + why);
}

const nlohmann::json* config_value(const nlohmann::json& j, const std::string& key, bool required) {
  const auto it = j.find(key);
  if (it != j.end()) return &*it;
  if (required) throw std::invalid_argument("model_config: missing key \"" + key + "\"");
  return nullptr;
}

int64_t config_integer(const nlohmann::json& j, const std::string& key, int64_t min, int64_t max,
                       const int64_t* fallback = nullptr) {
  const nlohmann::json* v = config_value(j, key, fallback == nullptr);
  if (v == nullptr) return *fallback;
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!v->is_number_integer()) throw config_error(key, "must be an integer in " + range + ", got " + v->dump());
  // The JSON library keeps non-negative integers unsigned; one above INT64_MAX would wrap if read
  // as int64_t, so each kind is compared as itself. (min and max are never negative here.)
  const bool in_range =
      v->is_number_unsigned()
          ? v->get<uint64_t>() >= static_cast<uint64_t>(min) && v->get<uint64_t>() <= static_cast<uint64_t>(max)
          : v->get<int64_t>() >= min && v->get<int64_t>() <= max;
  if (!in_range) throw config_error(key, "must be an integer in " + range + ", got " + v->dump());
  return v->get<int64_t>();
}

bool config_bool(const nlohmann::json& j, const std::string& key, const bool* fallback = nullptr) {
  const nlohmann::json* v = config_value(j, key, fallback == nullptr);
  if (v == nullptr) return *fallback;
  if (!v->is_boolean()) throw config_error(key, "must be true or false, got " + v->dump());
  return v->get<bool>();
}

std::string config_choice(const nlohmann::json& j, const std::string& key,
                          const std::vector<std::string>& allowed, const char* fallback = nullptr) {
  const nlohmann::json* v = config_value(j, key, fallback == nullptr);
  if (v == nullptr) return fallback;
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "" : " | ") + a;
  if (v->is_string())
    for (const std::string& a : allowed)
      if (v->get<std::string>() == a) return a;
  throw config_error(key, "must be one of " + list + ", got " + v->dump());
}
}  // namespace

double CaptionerConfig::approximate_decoder_parameters() const {
  // In double: the products of in-range fields overflow no double but could overflow int64.
  const double v = static_cast<double>(vocab_size), e = static_cast<double>(embedding_dim),
               u = static_cast<double>(units), len = static_cast<double>(max_caption_len);
  double layers = 0;
  if (decoder == DecoderKind::Transformer) {
    const double ff = ff_dim > 0 ? static_cast<double>(ff_dim) : 4 * u;
    layers = static_cast<double>(decoder_layers) * (8 * u * u + 2 * u * ff);  // self + cross attention, MLP
  } else {
    const double input = input_feeding ? e + u : e;
    layers = 3 * u * (input + u) + 2 * u * u;  // GRU gates, attention projections
  }
  return v * e + len * e + layers + u * v + v;  // embedding, positions, decoder, output layer
}

CaptionerConfig CaptionerConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object())
    throw std::invalid_argument("model_config: not a JSON object (got " + std::string(j.type_name()) + ")");
  CaptionerConfig c;
  // config_choice names the key in its message; the parse that follows cannot fail.
  c.encoder = parse_encoder(config_choice(j, "encoder", {"tiny", "inception_resnet_v2"}));
  c.image_size = static_cast<int>(config_integer(j, "image_size", kMinImageSize, kMaxImageSize));
  c.vocab_size = config_integer(j, "vocab_size", kMinVocabSize, kMaxVocabSize);
  c.max_caption_len = config_integer(j, "max_caption_len", kMinCaptionLen, kMaxCaptionLen);
  c.embedding_dim = config_integer(j, "embedding_dim", 1, kMaxUnits);
  c.units = config_integer(j, "units", 1, kMaxUnits);
  c.freeze_encoder = config_bool(j, "freeze_encoder");
  // The keys below came after the first checkpoints; their defaults are what those checkpoints hold
  // (no position embedding, the notebook's pixel scaling, a plain GRU decoder).
  const bool no = false;
  const int64_t two_layers = 2, four_heads = 4, default_ff = 0;
  c.position_embedding = config_bool(j, "position_embedding", &no);
  c.pixel_scaling = parse_pixel_scaling(config_choice(j, "pixel_scaling", {"inception", "unit"}, "inception"));
  c.decoder = parse_decoder(config_choice(j, "decoder", {"gru", "transformer"}, "gru"));
  c.input_feeding = config_bool(j, "input_feeding", &no);
  c.decoder_layers = config_integer(j, "decoder_layers", 1, kMaxDecoderLayers, &two_layers);
  c.heads = config_integer(j, "heads", 1, kMaxHeads, &four_heads);
  c.ff_dim = config_integer(j, "ff_dim", 0, kMaxFeedForward, &default_ff);
  // The combinations the decoders need, reported here rather than by the Captioner constructor
  // so that the message says it is the checkpoint's config that is wrong.
  if (c.input_feeding && c.decoder != DecoderKind::Gru)
    throw std::invalid_argument("model_config: input_feeding is an option of the GRU decoder only");
  if (c.decoder == DecoderKind::Transformer && c.embedding_dim != c.units)
    throw std::invalid_argument("model_config: the transformer decoder needs embedding_dim (" +
                                std::to_string(c.embedding_dim) + ") equal to units (" +
                                std::to_string(c.units) + ")");
  if (c.decoder == DecoderKind::Transformer && c.units % c.heads != 0)
    throw std::invalid_argument("model_config: units " + std::to_string(c.units) + " is not divisible by heads " +
                                std::to_string(c.heads));
  return c;
}

namespace {
InceptionConfig encoder_config(const CaptionerConfig& c) {
  InceptionConfig e = c.encoder == EncoderKind::Tiny ? InceptionConfig::tiny() : InceptionConfig::full();
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
  if (config.input_feeding && config.decoder != DecoderKind::Gru)
    throw std::invalid_argument("Captioner: input feeding is an option of the GRU decoder only");
  if (config.decoder == DecoderKind::Gru) {
    const int64_t gru_input = config.embedding_dim + (config.input_feeding ? config.units : 0);
    register_module(gru, std::make_unique<nn::GRU>("gru", gru_input, config.units, gen));
    register_module(attention, std::make_unique<nn::Attention>("attention"));
    register_module(layer_norm, std::make_unique<nn::LayerNormalization>("layer_normalization",
                                                                         config.units));
  } else {  // DecoderKind::Transformer
    if (config.embedding_dim != config.units)
      throw std::invalid_argument("Captioner: the transformer decoder needs embedding_dim (" +
                                  std::to_string(config.embedding_dim) + ") equal to units (" +
                                  std::to_string(config.units) + ")");
    if (config.decoder_layers < 1)
      throw std::invalid_argument("Captioner: decoder_layers must be at least 1");
    const int64_t ff = config.ff_dim > 0 ? config.ff_dim : 4 * config.units;
    layers.resize(config.decoder_layers);
    for (int64_t i = 0; i < config.decoder_layers; ++i)
      register_module(layers[i], std::make_unique<nn::TransformerDecoderLayer>(
                                     "decoder_layer_" + std::to_string(i), config.units,
                                     config.units, config.heads, ff, gen));
    register_parameter("token_positions", token_positions,
                       random_uniform({config.max_caption_len, config.units}, -0.05, 0.05, gen));
  }
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

DecoderState DecoderState::row(int64_t b) const {
  DecoderState out;
  out.length = length;
  for (const Tensor& t : tensors) out.tensors.push_back(slice(t, 0, b, b + 1).contiguous());
  return out;
}

DecoderState DecoderState::concat(const std::vector<DecoderState>& states) {
  DecoderState out;
  if (states.empty()) return out;
  out.length = states[0].length;
  for (size_t i = 0; i < states[0].tensors.size(); ++i) {
    std::vector<Tensor> parts;
    for (const DecoderState& s : states) {
      if (s.length != out.length || s.tensors.size() != states[0].tensors.size())
        throw std::invalid_argument("DecoderState::concat: states of different lengths");
      parts.push_back(s.tensors[i]);
    }
    out.tensors.push_back(glimpse::concat(parts, 0));
  }
  return out;
}

DecoderState Captioner::initial_state(int64_t batch) const {
  DecoderState s;
  // The Transformer starts with empty caches; the GRU with a zero state (and, with input
  // feeding, a zero context before the first step).
  if (gru) {
    const Device device = gru->kernel.device();
    s.tensors.push_back(Tensor::zeros({batch, config_.units}, DType::F32, device));
    if (config_.input_feeding) s.tensors.push_back(Tensor::zeros({batch, config_.units}, DType::F32, device));
  }
  return s;
}

Tensor Captioner::decode_gru(const Tensor& features, const Tensor& embedded,
                             const std::vector<Tensor>& state, Tensor* attention_out,
                             std::vector<Tensor>* state_out) {
  Tensor sequence, context, weights;
  if (!config_.input_feeding) {
    // The notebook's decoder: the GRU runs over the whole caption as one op, then every step
    // attends with its GRU output as the query.
    auto [outputs, h] = gru->forward(embedded, state[0]);
    nn::AttentionResult att = attention->forward(outputs, features);
    sequence = outputs;
    context = att.output;
    weights = att.weights;
    if (state_out) *state_out = {h};
  } else {
    // Input feeding: step t's GRU input needs step t-1's context, so the steps run one by one.
    const int64_t B = embedded.shape()[0], T = embedded.shape()[1];
    Tensor h = state[0], last_context = state[1];
    std::vector<Tensor> outputs, contexts, step_weights;
    for (int64_t t = 0; t < T; ++t) {
      Tensor input = concat({slice(embedded, 1, t, t + 1), reshape(last_context, {B, 1, config_.units})}, 2);
      auto [output, h_next] = gru->forward(input, h);  // [B, 1, units]
      nn::AttentionResult att = attention->forward(output, features);
      outputs.push_back(output);
      contexts.push_back(att.output);
      step_weights.push_back(att.weights);
      h = h_next;
      last_context = reshape(att.output, {B, config_.units});
    }
    // Along time; a single step (the decoding loop) needs no copy.
    auto join_steps = [](const std::vector<Tensor>& steps) {
      return steps.size() == 1 ? steps[0] : concat(steps, 1);
    };
    sequence = join_steps(outputs);
    context = join_steps(contexts);
    weights = join_steps(step_weights);
    if (state_out) *state_out = {h, last_context};
  }
  if (attention_out) *attention_out = weights;
  return layer_norm->forward(add(sequence, context));
}

Tensor Captioner::transformer_input(const Tensor& embedded, int64_t first_position) const {
  const int64_t T = embedded.shape()[1];
  if (first_position + T > config_.max_caption_len)
    throw std::invalid_argument("Captioner: the transformer decoder has position embeddings for " +
                                std::to_string(config_.max_caption_len) + " tokens, asked for " +
                                std::to_string(first_position + T));
  return add(embedded, slice(token_positions, 0, first_position, first_position + T));
}

Tensor Captioner::decode(const Tensor& features, const Tensor& tokens, Tensor* attention_out) {
  return output_dense->forward(decode_hidden(features, tokens, attention_out));
}

Tensor Captioner::loss(const Tensor& features, const Tensor& tokens, const Tensor& targets) {
  return nn::dense_masked_crossentropy(*output_dense, decode_hidden(features, tokens), targets);
}

Tensor Captioner::decode_hidden(const Tensor& features, const Tensor& tokens, Tensor* attention_out) {
  if (tokens.rank() != 2 || tokens.dtype() != DType::I32)
    throw std::invalid_argument("Captioner::decode: tokens must be int32 [B, T], got " +
                                shape_str(tokens.shape()));
  if (features.rank() != 3 || features.shape()[0] != tokens.shape()[0])
    throw std::invalid_argument("Captioner::decode: features " + shape_str(features.shape()) +
                                " do not match tokens " + shape_str(tokens.shape()));
  Tensor embedded = embedding->forward(tokens);
  if (gru)
    return decode_gru(features, embedded, initial_state(tokens.shape()[0]).tensors, attention_out,
                      nullptr);
  Tensor x = transformer_input(embedded, 0), cross;
  for (const auto& layer : layers) {
    nn::TransformerDecoderLayer::Output o = layer->forward(x, features);
    x = o.x;
    cross = o.cross_attention;
  }
  if (attention_out) *attention_out = mean(cross, {1});  // [B, T, cells]
  return x;
}

Captioner::Step Captioner::step(const Tensor& features, const Tensor& tokens,
                                const DecoderState& state) {
  if (tokens.rank() != 1 || tokens.dtype() != DType::I32)
    throw std::invalid_argument("Captioner::step: tokens must be int32 [B], got " +
                                shape_str(tokens.shape()));
  const int64_t B = tokens.shape()[0];
  Step out;
  Tensor attention_weights, logits;
  Tensor embedded = embedding->forward(reshape(tokens, {B, 1}));
  out.state.length = state.length + 1;
  if (gru) {
    const size_t expected = config_.input_feeding ? 2 : 1;
    if (state.tensors.size() != expected)
      throw std::invalid_argument("Captioner::step: this GRU decoder's state holds " +
                                  std::to_string(expected) + " tensor(s), got " +
                                  std::to_string(state.tensors.size()));
    logits = output_dense->forward(
        decode_gru(features, embedded, state.tensors, &attention_weights, &out.state.tensors));
  } else {
    const size_t n = layers.size();
    if (!state.tensors.empty() && state.tensors.size() != 2 * n)
      throw std::invalid_argument("Captioner::step: a transformer decoder state holds 2 tensors per layer");
    Tensor x = transformer_input(embedded, state.length), cross;
    for (size_t i = 0; i < n; ++i) {
      nn::TransformerDecoderLayer::Cache cache;
      if (!state.tensors.empty()) cache = {state.tensors[2 * i], state.tensors[2 * i + 1]};
      nn::TransformerDecoderLayer::Output o = layers[i]->step(x, features, cache);
      x = o.x;
      cross = o.cross_attention;
      out.state.tensors.push_back(cache.keys);
      out.state.tensors.push_back(cache.values);
    }
    attention_weights = mean(cross, {1});
    logits = output_dense->forward(x);
  }
  out.logits = reshape(logits, {B, config_.vocab_size});
  out.attention = reshape(attention_weights, {B, grid_cells_});
  return out;
}

}  // namespace glimpse::models
