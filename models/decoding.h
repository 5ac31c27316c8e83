// Turning a trained captioner into words: greedy decoding, the notebook's top-k sampling, and
// length-normalised beam search. Every strategy feeds ONE token per step and carries the decoder
// state by hand (Captioner::step), never re-running the prefix.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/captioner.h"
#include "tensor/random.h"

namespace glimpse::models {

struct DecodeOptions {
  enum class Strategy { Greedy, Sample, Beam } strategy = Strategy::Greedy;
  int top_k = 10;             // sampling: keep the k largest logits
  double temperature = 1.0;   // sampling: logits / temperature
  int beam_size = 3;          // beam search width
  double length_penalty = 1.0;  // beam: score = log p / length^alpha
  int max_length = 64;        // generated tokens, <end> included
  int32_t start_id = 3, end_id = 4;
};

struct DecodedCaption {
  std::vector<int32_t> tokens;              // without <start>, without <end>
  std::vector<std::vector<float>> attention;  // per generated token: weights over the h*w grid
  double log_probability = 0;
};

// features: [1, h*w, units] (one image, already encoded). Runs without recording gradients.
DecodedCaption decode_caption(Captioner& model, const Tensor& features, const DecodeOptions& options,
                              Generator& gen);

}  // namespace glimpse::models
