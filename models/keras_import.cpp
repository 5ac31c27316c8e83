// Keras weight import for InceptionResNetV2 (see keras_import.h).
#include "models/keras_import.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <stdexcept>

#include "io/keras_weights.h"

namespace glimpse::models {

namespace {

// One weighted layer of our encoder, in Keras creation order, with its tensors in Keras order.
struct Target {
  std::string name;       // Keras automatic name (conv2d_5, batch_normalization_5, block35_1_conv)
  std::string slim_name;  // the official file's TF-slim name (Conv2d_1a_3x3, ..._BatchNorm)
  std::vector<Tensor*> tensors;
};

std::vector<Target> encoder_targets(InceptionResNetV2& encoder) {
  std::vector<Target> out;
  for (ConvBN* unit : encoder.layers_in_order()) {
    Target conv{unit->conv->name(), unit->slim_name, {&unit->conv->kernel}};
    if (unit->conv->use_bias) conv.tensors.push_back(&unit->conv->bias);
    out.push_back(conv);
    if (unit->bn) {
      Target bn{unit->bn->name(), unit->slim_name + "_BatchNorm", {}};
      // Keras order: trainable first (gamma if scale, beta), then moving mean and variance.
      if (unit->bn->scale) bn.tensors.push_back(&unit->bn->gamma);
      if (unit->bn->center) bn.tensors.push_back(&unit->bn->beta);
      bn.tensors.push_back(&unit->bn->moving_mean);
      bn.tensors.push_back(&unit->bn->moving_variance);
      out.push_back(bn);
    }
  }
  return out;
}

}  // namespace

KerasImportReport import_keras_encoder_weights(InceptionResNetV2& encoder, const std::string& path) {
  KerasWeightFile file = read_keras_weights(path);
  std::vector<Target> targets = encoder_targets(encoder);
  std::map<std::string, const KerasLayerWeights*> by_name;
  for (const KerasLayerWeights& l : file.layers) by_name[l.layer_name] = &l;

  // Layer order in real files is Keras's topological order, not creation order, so names are
  // the reliable key: automatic names first, then the TF-slim names of the official file.
  // A file that names at least half of the layers is matched by name (and the rest reported as
  // missing); only a file whose names mean nothing to us falls back to position.
  auto count_present = [&](bool slim) {
    size_t n = 0;
    for (const Target& t : targets) n += by_name.count(slim ? t.slim_name : t.name);
    return n;
  };
  const size_t auto_hits = count_present(false), slim_hits = count_present(true);
  const bool use_slim = slim_hits > auto_hits;
  const bool all_named = std::max(auto_hits, slim_hits) * 2 >= targets.size();
  if (use_slim)
    for (Target& t : targets) std::swap(t.name, t.slim_name);

  KerasImportReport report;
  report.matched_by = !all_named ? "order" : use_slim ? "slim-name" : "name";
  std::vector<std::pair<Tensor*, const KerasWeight*>> plan;
  std::vector<std::string> problems;
  if (!all_named && file.layers.size() != targets.size())
    problems.push_back("the file has " + std::to_string(file.layers.size()) +
                       " layers with weights, the encoder needs " + std::to_string(targets.size()) +
                       " (and the layer names do not match, so they cannot be paired by name)");
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    const KerasLayerWeights* layer = nullptr;
    if (all_named) {
      auto it = by_name.find(t.name);
      layer = it == by_name.end() ? nullptr : it->second;
    }
    else if (i < file.layers.size()) layer = &file.layers[i];
    if (!layer) {
      problems.push_back("missing layer " + t.name);
      continue;
    }
    const std::string label = layer->layer_name == t.name ? t.name : layer->layer_name + " -> " + t.name;
    if (layer->weights.size() != t.tensors.size()) {
      problems.push_back(label + ": file has " + std::to_string(layer->weights.size()) +
                         " weights, expected " + std::to_string(t.tensors.size()));
      continue;
    }
    for (size_t k = 0; k < t.tensors.size(); ++k) {
      const KerasWeight& w = layer->weights[k];
      if (Shape(w.shape) != t.tensors[k]->shape()) {
        problems.push_back(label + " weight " + w.name + ": file shape " + shape_str(w.shape) +
                           ", expected " + shape_str(t.tensors[k]->shape()));
        continue;
      }
      plan.push_back({t.tensors[k], &w});
    }
  }
  if (all_named) {
    std::map<std::string, bool> wanted;
    for (const Target& t : targets) wanted[t.name] = true;
    for (const KerasLayerWeights& l : file.layers)
      if (!wanted.count(l.layer_name)) problems.push_back("unexpected layer " + l.layer_name);
  }
  if (!problems.empty()) {
    std::ostringstream msg;
    msg << "import_keras_encoder_weights: " << path << " does not fit the encoder ("
        << problems.size() << " problem" << (problems.size() > 1 ? "s" : "") << "; nothing loaded):";
    for (size_t i = 0; i < problems.size() && i < 50; ++i) msg << "\n  " << problems[i];
    if (problems.size() > 50) msg << "\n  ... and " << problems.size() - 50 << " more";
    throw std::runtime_error(msg.str());
  }
  for (auto& [tensor, w] : plan)
    tensor->copy_(Tensor::from_vector(w->data, w->shape).to(tensor->device()));
  report.layers = static_cast<int>(targets.size());
  report.tensors = static_cast<int>(plan.size());
  return report;
}

}  // namespace glimpse::models
