// io/keras_weights.h — reads Keras weight files (Keras 2 "legacy" HDF5 and Keras 3 .weights.h5)
// into a neutral list of layers and float arrays, without knowing any model. Matching those
// arrays to a glimpse Module's parameters is the importer's job (models/).
//
// What the two formats record, and therefore what a matcher can rely on:
//
// Keras 2 legacy HDF5 (tf.keras / tf_keras `save_weights("x.h5")`, the official ImageNet files,
// and `model.save("x.h5")`, whose weights sit under the group `model_weights`):
//   - root attribute `layer_names`: every layer of `model.layers` (with or without weights), in
//     that order; long lists are split into `layer_names0`, `layer_names1`, ...;
//   - per layer a group with attribute `weight_names` (also possibly split), each the path of a
//     dataset relative to the layer group, e.g. "conv2d/kernel:0";
//   - a nested Model is one layer whose weight_names cover all its inner weights.
//   `layers` keeps layer_names order and each layer's weight_names order (trainable weights
//   first, then non-trainable), exactly as Keras's own loader uses them.
//
// Keras 3 `.weights.h5` (keras 3.x `save_weights("x.weights.h5")`; checked with keras 3.15):
//   - no layer_names/weight_names; a layer's variables are datasets `vars/0`, `vars/1`, ... of
//     the group `layers/<class>[_<k>]`, where <class> is the snake_case class name ("conv2d",
//     "batch_normalization", "input_layer") and k counts earlier layers of the same class in
//     `model.layers` (none for the first, then _1, _2, ...): numbering is by position, not by the
//     layer's name. The vars group carries the layer's real name in its attribute `name` (3.x
//     versions that wrote none fall back to the group name).
//   - sub-objects of a layer get their own groups named after the Python attribute: a GRU's cell
//     is `layers/gru/cell/vars/...`, MultiHeadAttention's projections `.../query_dense/vars/...`.
//     These are merged into the owning layer; weight names are the paths below the layer group
//     ("vars/0", "cell/vars/2", "query_dense/vars/1"), own vars first, then sub-objects in the
//     order Keras visits them (attribute names sorted, names starting with '_' last). For a
//     layer with several sub-objects this can differ from `layer.weights` order: match by name.
//   - a nested Functional/Sequential model is `layers/functional/layers/...`; its layers are
//     listed individually (group_path shows the nesting), at the nested model's place.
//   - `optimizer/...` (present when a compiled model is saved) is ignored.
//   - HDF5 does not record the order groups were created in, so the order of `model.layers` across
//     different classes is lost. `layers` is sorted naturally by group name (class name, then k
//     numerically: conv2d, conv2d_1, conv2d_2, ..., conv2d_10). Within one class that IS
//     model.layers order, which is what a by-position matcher needs: the k-th Conv2D of the model
//     (in model.layers order) is the entry with keras3_class "conv2d" and keras3_class_index k.
//     Caution: for functional models model.layers is a topological order, which can differ from
//     the order layers were created in (Inception-ResNet-v2 is such a model), so conv2d_5 in a
//     Keras 3 file is not necessarily the layer Keras named "conv2d_5"; that name is layer_name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace glimpse {

class H5File;

struct KerasWeight {
  std::string name;  // legacy: the weight_names entry ("conv2d/kernel:0"); Keras 3: "vars/0" etc.
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major; non-float weights are converted to float
};

struct KerasLayerWeights {
  std::string layer_name;  // the Keras layer name ("conv2d_3", "Conv2d_1a_3x3_BatchNorm")
  std::vector<KerasWeight> weights;
  // Where the layer lives in the file: legacy "conv2d" or "model_weights/conv2d";
  // Keras 3 "layers/conv2d_1" or "layers/functional/layers/dense".
  std::string group_path;
  // Keras 3 only (empty / -1 for legacy files): the class part and the position part of the
  // group name, e.g. "conv2d" and 1 for layers/conv2d_1 (0 for an unsuffixed name).
  std::string keras3_class;
  int64_t keras3_class_index = -1;
};

struct KerasWeightFile {
  std::string format;                     // "keras2-legacy" or "keras3"
  std::string keras_version;              // legacy files only ("" if absent)
  std::string backend;                    // legacy files only ("" if absent)
  std::vector<KerasLayerWeights> layers;  // only layers that have weights, in the order above
};

// Detects the format and reads every weight. Errors name the file and the offending item:
// missing file, not HDF5, truncated, not a Keras weight file, missing weight_names, a weight
// name without its dataset, non-numeric data.
KerasWeightFile read_keras_weights(const std::string& path);
KerasWeightFile read_keras_weights(const H5File& file);

// The layer called `layer_name`; throws std::runtime_error listing a few available names.
const KerasLayerWeights& find_keras_layer(const KerasWeightFile& weights,
                                          const std::string& layer_name);

// A string-list attribute that Keras may have split into name0, name1, ... because HDF5 object
// headers cannot hold more than 64 KiB of attributes. Throws if neither form exists.
std::vector<std::string> read_keras_string_list_attr(const H5File& file,
                                                     const std::string& object_path,
                                                     const std::string& name);

// Splits a Keras auto-generated name into its base and number: "conv2d_12" -> {"conv2d", 12},
// "conv2d" -> {"conv2d", 0}, "block35_1_conv" -> {"block35_1_conv", 0} (no trailing _<digits>).
// Current Keras and tf.keras call the first layer of a class "conv2d" and the second "conv2d_1";
// Keras 2.0 started at "conv2d_1", so callers must know which convention a file follows.
struct KerasNameParts {
  std::string base;
  int64_t index = 0;
};
KerasNameParts split_keras_auto_name(const std::string& name);

// "Natural" order: digit runs compare as numbers, so "conv2d_2" < "conv2d_10" and "vars/9" <
// "vars/10". Ties (e.g. "1" vs "01") fall back to plain byte order.
bool natural_less(const std::string& a, const std::string& b);

}  // namespace glimpse
