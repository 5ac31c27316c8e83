// The image captioner of the notebook: encoder -> features -> GRU/attention decoder -> logits.
//
//   images [B, S, S, 3] -> encoder [B, h, w, C] -> reshape [B, h*w, C] -> Dense(D, relu)
//   tokens [B, T] -> Embedding -> GRU (sequences + state) -> Attention(query = GRU output,
//   value = features) -> Add(GRU output, context) -> LayerNormalization -> Dense(vocab)
//
// decoder = DecoderKind::Transformer swaps the GRU/Attention part for the alternative the course
// mentions:
//   tokens -> Embedding + learned position embedding -> N x TransformerDecoderLayer (masked
//   self-attention, cross-attention to the features, feed-forward) -> Dense(vocab)
//
// Training runs the decoder over the whole caption at once (teacher forcing); inference calls
// step(), which feeds ONE token and carries the decoder state by hand, as the notebook's second
// decoder model does: the GRU state, or the Transformer's cached self-attention keys and values.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "io/image.h"
#include "models/inception_resnet_v2.h"
#include "nn/attention.h"
#include "nn/gru.h"
#include "nn/layers.h"
#include "nn/transformer.h"

namespace glimpse::models {

// The encoder and decoder a CaptionerConfig chooses. Checkpoints, feature caches and flags spell
// them as strings ("tiny", "gru", ...): to_string writes those, parse_* reads them and throws
// std::invalid_argument naming the field and the allowed values, e.g. "unknown decoder 'lstm'
// (expected gru or transformer)". (The pixel scaling is io/image.h's PixelScaling, spelled the
// same way by its own to_string and parse_pixel_scaling.)
enum class EncoderKind {
  Tiny,               // "tiny": InceptionConfig::tiny(), trained from scratch on shapes
  InceptionResNetV2,  // "inception_resnet_v2": the full Keras network
};
enum class DecoderKind {
  Gru,          // "gru": the notebook's GRU + attention
  Transformer,  // "transformer": TransformerDecoderLayer stack
};
std::string to_string(EncoderKind encoder);
std::string to_string(DecoderKind decoder);
EncoderKind parse_encoder(const std::string& name);
DecoderKind parse_decoder(const std::string& name);

struct CaptionerConfig {
  EncoderKind encoder = EncoderKind::InceptionResNetV2;
  int image_size = 299;
  int64_t vocab_size = 20000;
  int64_t max_caption_len = 64;
  int64_t embedding_dim = 512;
  int64_t units = 512;         // GRU units = attention dim (Add needs equal widths)
  bool freeze_encoder = true;  // the notebook's trainable=False
  // Not in the notebook: a learned embedding of each grid cell added to the projected features,
  // so the decoder can tell where an attended region is (left/right/above/below).
  bool position_embedding = false;
  DecoderKind decoder = DecoderKind::Gru;  // the notebook's, or the Transformer
  // GRU only, not in the notebook: each step's GRU input is the token's embedding joined with the
  // previous step's attention context ("input feeding", Luong et al. 2015), so the GRU state
  // remembers what the decoder has looked at. Without it the GRU sees only tokens, and a relation
  // ("A above B") must be read from a single attention look.
  bool input_feeding = false;
  int64_t decoder_layers = 2;   // transformer only
  int64_t heads = 4;            // transformer only (units must divide by it)
  int64_t ff_dim = 0;           // transformer feed-forward width (0 = 4 x units)
  PixelScaling pixel_scaling = PixelScaling::Inception;  // x/127.5-1 (or Unit: x/255)

  // The accepted range of every size. train's flags and from_json share them: a checkpoint's
  // config is as untrusted as a command line, and an absurd size would otherwise surface as an
  // allocation failure deep inside model construction.
  static constexpr int kMinImageSize = 32, kMaxImageSize = 2048;
  static constexpr int64_t kMinVocabSize = 3, kMaxVocabSize = 10000000;
  static constexpr int64_t kMinCaptionLen = 3, kMaxCaptionLen = 4096;
  static constexpr int64_t kMaxUnits = 65536;  // units and embedding_dim, from 1
  static constexpr int64_t kMaxDecoderLayers = 64, kMaxHeads = 1024;
  static constexpr int64_t kMaxFeedForward = 4 * kMaxUnits;

  static CaptionerConfig notebook();    // the notebook's sizes
  static CaptionerConfig tiny_shapes(); // the embedded demo's sizes
  nlohmann::json to_json() const;
  // Checks every key's presence, type and range (and the combinations the decoders need) and
  // throws std::invalid_argument naming the key, e.g. "model_config: units must be an integer in
  // [1, 65536], got 100000". Keys added after the first checkpoints may be absent (defaults).
  static CaptionerConfig from_json(const nlohmann::json& j);

  // The decoder's parameter count, from its largest terms (embedding, GRU or Transformer layers,
  // output layer; the encoder adds at most Inception-ResNet-v2's 54 million). Each field can be in
  // range while their product is absurd (units 65536 with a 20,000-word vocabulary): loaders
  // compare this with the machine's memory before building anything.
  double approximate_decoder_parameters() const;
};

// What the decoder carries from one step to the next: the GRU state {h [B, units]} (with input
// feeding {h, the last attention context [B, units]}), or for the
// Transformer each layer's cached keys and values {k_0, v_0, k_1, v_1, ...} [B, heads, t, k].
struct DecoderState {
  std::vector<Tensor> tensors;
  int64_t length = 0;  // tokens fed so far

  DecoderState row(int64_t b) const;  // batch row b of every tensor (beam search)
  static DecoderState concat(const std::vector<DecoderState>& states);  // along the batch
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
  // The same before the output Dense: [B, T, units], the input of output_dense.
  Tensor decode_hidden(const Tensor& features, const Tensor& tokens, Tensor* attention = nullptr);
  // The training loss of teacher-forced captions: the masked cross-entropy of decode()'s logits
  // against targets [B, T] (0 = padding), with the output Dense run only on the non-padding rows
  // (nn::dense_masked_crossentropy: same value and gradients, less work). targets may be on the
  // host whatever the model's device.
  Tensor loss(const Tensor& features, const Tensor& tokens, const Tensor& targets);

  struct Step {
    Tensor logits;     // [B, vocab]
    DecoderState state;
    Tensor attention;  // [B, h*w] (Transformer: the last layer's cross-attention, head mean)
  };
  // One decoding step: tokens [B] (int32) and the state after the previous ones.
  Step step(const Tensor& features, const Tensor& tokens, const DecoderState& state);
  DecoderState initial_state(int64_t batch) const;

  const CaptionerConfig& config() const { return config_; }
  int64_t grid_cells() const { return grid_cells_; }
  int64_t grid_size() const { return encoder->grid_size(); }

  std::unique_ptr<InceptionResNetV2> encoder;
  std::unique_ptr<nn::Dense> feature_dense;
  std::unique_ptr<nn::Embedding> embedding;
  // decoder = DecoderKind::Gru:
  std::unique_ptr<nn::GRU> gru;
  std::unique_ptr<nn::Attention> attention;
  std::unique_ptr<nn::LayerNormalization> layer_norm;
  // decoder = DecoderKind::Transformer:
  std::vector<std::unique_ptr<nn::TransformerDecoderLayer>> layers;
  Tensor token_positions;  // [max_caption_len, units]
  std::unique_ptr<nn::Dense> output_dense;
  Tensor positions;  // [h*w, units] when config.position_embedding

 private:
  // The GRU decoder up to (not including) output_dense.
  Tensor decode_gru(const Tensor& features, const Tensor& embedded, const std::vector<Tensor>& state,
                    Tensor* attention_out, std::vector<Tensor>* state_out);
  Tensor transformer_input(const Tensor& embedded, int64_t first_position) const;
  CaptionerConfig config_;
  int64_t grid_cells_ = 0;
};

}  // namespace glimpse::models
