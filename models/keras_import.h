// Filling the framework's InceptionResNetV2 from Keras weight files (io/keras_weights.h reads
// them): the official TF-slim-named ImageNet file, files re-saved by tf.keras (automatic names
// conv2d_N, batch_normalization_N, block35_1_conv, conv_7b ...), and Keras 3 .weights.h5.
//
// Matching: by layer name when every automatic name the encoder needs is in the file (tf.keras and
// Keras 3 files), else by TF-slim name (the official file), else by creation order among layers
// with weights (a last resort: real files list layers in Keras's topological order). Any missing or extra layer or any shape mismatch gives ONE error listing every offender,
// and nothing is loaded.
#pragma once
#include <string>

#include "models/inception_resnet_v2.h"

namespace glimpse::models {

struct KerasImportReport {
  std::string matched_by;  // "name", "slim-name" or "order"
  int layers = 0;
  int tensors = 0;
};

KerasImportReport import_keras_encoder_weights(InceptionResNetV2& encoder, const std::string& path);

}  // namespace glimpse::models
