// The image captioner of the notebook: encoder -> features -> GRU/attention decoder -> logits.
//
//   images [B, S, S, 3] -> encoder [B, h, w, C] -> reshape [B, h*w, C] -> Dense(D, relu)
//   tokens [B, T] -> Embedding -> GRU (sequences + state) -> Attention(query = GRU output,
//   value = features) -> Add(GRU output, context) -> LayerNormalization -> Dense(vocab)
//
// Training runs the decoder over the whole caption at once (teacher forcing); inference calls
// step(), which feeds ONE token and carries the GRU state by hand, as the notebook's second
// decoder model does.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "models/inception_resnet_v2.h"
#include "nn/attention.h"
#include "nn/gru.h"
#include "nn/layers.h"

namespace glimpse::models {

struct CaptionerConfig {
  std::string encoder = "inception_resnet_v2";  // or "tiny"
  int image_size = 299;
  int64_t vocab_size = 20000;
  int64_t max_caption_len = 64;
  int64_t embedding_dim = 512;
  int64_t units = 512;         // GRU units = attention dim (Add needs equal widths)
  bool freeze_encoder = true;  // the notebook's trainable=False
  // Not in the notebook: a learned embedding of each grid cell added to the projected features,
  // so the decoder can tell where an attended region is (left/right/above/below).
  bool position_embedding = false;
  std::string pixel_scaling = "inception";  // "inception" (x/127.5-1) or "unit" (x/255)

  static CaptionerConfig notebook();    // the notebook's sizes
  static CaptionerConfig tiny_shapes(); // the embedded demo's sizes
  nlohmann::json to_json() const;
  static CaptionerConfig from_json(const nlohmann::json& j);
};

class Captioner : public nn::Module {
 public:
  Captioner(const CaptionerConfig& config, uint64_t seed);
  std::string type_name() const override { return "Captioner"; }

  // images [B, S, S, 3] -> projected features [B, h*w, units]
  Tensor encode(const Tensor& images);
  // The encoder's raw output flattened: [B, h*w, C] (what a feature cache stores).
  Tensor encoder_features(const Tensor& images);
  // Raw encoder features [B, h*w, C] -> projected features [B, h*w, units].
  Tensor project_features(const Tensor& raw);
  // Teacher-forced logits for whole captions: tokens [B, T] -> [B, T, vocab]; also returns the
  // attention weights [B, T, h*w] when `attention` is not null.
  Tensor decode(const Tensor& features, const Tensor& tokens, Tensor* attention = nullptr);

  struct Step {
    Tensor logits;     // [B, vocab]
    Tensor state;      // [B, units]
    Tensor attention;  // [B, h*w]
  };
  // One decoding step: tokens [B] (int32), state [B, units].
  Step step(const Tensor& features, const Tensor& tokens, const Tensor& state);
  Tensor initial_state(int64_t batch) const;

  const CaptionerConfig& config() const { return config_; }
  int64_t grid_cells() const { return grid_cells_; }
  int64_t grid_size() const { return encoder->grid_size(); }

  std::unique_ptr<InceptionResNetV2> encoder;
  std::unique_ptr<nn::Dense> feature_dense;
  std::unique_ptr<nn::Embedding> embedding;
  std::unique_ptr<nn::GRU> gru;
  std::unique_ptr<nn::Attention> attention;
  std::unique_ptr<nn::LayerNormalization> layer_norm;
  std::unique_ptr<nn::Dense> output_dense;
  Tensor positions;  // [h*w, units] when config.position_embedding

 private:
  Tensor decode_from(const Tensor& features, const Tensor& embedded, const Tensor& state,
                     Tensor* attention_out, Tensor* state_out);
  CaptionerConfig config_;
  int64_t grid_cells_ = 0;
};

}  // namespace glimpse::models
