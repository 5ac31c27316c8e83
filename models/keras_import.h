// Filling the framework's InceptionResNetV2 from Keras weight files (io/keras_weights.h reads
// them): the official TF-slim-named ImageNet file, files re-saved by tf.keras (automatic names
// conv2d_N, batch_normalization_N, block35_1_conv, conv_7b ...), and Keras 3 .weights.h5.
//
// Matching, first rule that fits every layer wins:
//   1. by name: the encoder's automatic Keras names (tf.keras and Keras 3 files of a model built
//      once in a fresh session), or the TF-slim names of the official file;
//   2. by structure: the way Keras's own loaders pair layers, so any valid file of the
//      architecture loads whatever its names (a model built twice in one session is saved as
//      conv2d_37, batch_normalization_37, ...). Legacy files list their layers in Keras's
//      `model.layers` order, so the k-th layer with weights of the file is the k-th of the
//      encoder in that order; Keras 3 files name their groups by class and position in that
//      order (layers/conv2d_5 is the 6th Conv2D), so each group goes to the encoder's Conv2D or
//      BatchNormalization at that position. `model.layers` order is derived from the layer graph
//      exactly as Keras derives it (keras_model_layers_order).
// A file that fits neither is refused whole and nothing is loaded: when most names are the
// encoder's, the error lists every missing, extra or misshapen layer; otherwise it names the first
// layer where the file's structure departs from the encoder's (a file of another architecture or
// config, a truncated file, a wrong shape).
#pragma once
#include <string>
#include <vector>

#include "models/inception_resnet_v2.h"

namespace glimpse::models {

struct KerasImportReport {
  std::string matched_by;  // "name", "slim-name" or "structure"
  int layers = 0;
  int tensors = 0;
};

KerasImportReport import_keras_encoder_weights(InceptionResNetV2& encoder, const std::string& path);

// Keras's `model.layers` order for a functional model whose output is the graph's last node (as
// keras/src/ops/function.py map_graph and tf_keras's functional.py compute it): layers sorted by
// depth, the longest path from the layer to the output, deepest first; ties in the order a
// depth-first walk from the output, taking each layer's inputs in call order, first reaches them.
// Returns node indices; nodes that do not lead to the output are left out.
std::vector<int> keras_model_layers_order(const std::vector<KerasLayerNode>& graph);

// The encoder's layers with weights (their automatic Keras names) in Keras's model.layers order.
std::vector<std::string> keras_weighted_layer_names(const InceptionResNetV2& encoder);

}  // namespace glimpse::models
