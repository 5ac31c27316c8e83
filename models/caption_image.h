// One image to words with a trained captioner: the path tools/infer, tools/eval and the sample
// captions of each training epoch share. The image is resized and scaled as the model's config
// says (io/image.h:preprocess_image), encoded, decoded one token at a time (models/decoding.h) and
// turned back into text by the tokenizer.
#pragma once
#include <string>

#include "io/image.h"
#include "io/tokenizer.h"
#include "models/captioner.h"
#include "models/decoding.h"
#include "tensor/random.h"

namespace glimpse::models {

// Decoding options that fit `tokenizer`: its <start> and <end> ids, and at most its sequence length
// of tokens. The strategy and its settings keep their defaults (greedy) for the caller to change.
DecodeOptions decode_options_for(const Tokenizer& tokenizer);

struct ImageCaption {
  std::string text;        // the caption's words, without <start> and <end>
  DecodedCaption decoded;  // its token ids, each word's attention over the grid, its log-probability
};

// Captions one decoded image (read_jpeg, read_png) on the model's device, without recording
// gradients. Inference wants the model in eval mode (load_captioner leaves it so); `gen` is used by
// sampling only.
ImageCaption caption_image(Captioner& model, const Tokenizer& tokenizer, const Image& image,
                           const DecodeOptions& options, Generator& gen);

}  // namespace glimpse::models
