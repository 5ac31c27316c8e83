// One image to words (see caption_image.h).
#include "models/caption_image.h"

#include <vector>

#include "tensor/autograd.h"

namespace glimpse::models {

DecodeOptions decode_options_for(const Tokenizer& tokenizer) {
  DecodeOptions options;
  options.start_id = tokenizer.id_of(kStartMarker);
  options.end_id = tokenizer.id_of(kEndMarker);
  options.max_length = tokenizer.sequence_length();
  return options;
}

ImageCaption caption_image(Captioner& model, const Tokenizer& tokenizer, const Image& image,
                           const DecodeOptions& options, Generator& gen) {
  const CaptionerConfig& config = model.config();
  const int64_t S = config.image_size;
  std::vector<float> pixels = preprocess_image(image, config.image_size, config.pixel_scaling);
  NoGradGuard no_grad;
  Tensor features = model.encode(Tensor::from_vector(pixels, {1, S, S, 3}).to(model.device()));
  ImageCaption caption;
  caption.decoded = decode_caption(model, features, options, gen);
  caption.text = tokenizer.decode(caption.decoded.tokens, /*drop_markers=*/true);
  return caption;
}

}  // namespace glimpse::models
