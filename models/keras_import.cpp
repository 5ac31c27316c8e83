// Keras weight import for InceptionResNetV2 (see keras_import.h for the matching rules).
#include "models/keras_import.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "io/keras_weights.h"

namespace glimpse::models {

std::vector<int> keras_model_layers_order(const std::vector<KerasLayerNode>& graph) {
  if (graph.empty()) return {};
  const int n = static_cast<int>(graph.size());
  for (int i = 0; i < n; ++i)
    for (int input : graph[i].inputs)
      if (input < 0 || input >= i)
        throw std::invalid_argument("keras_model_layers_order: node " + std::to_string(i) +
                                    " takes node " + std::to_string(input) +
                                    ", which is not an earlier node");
  // Depth-first walk from the output: `first_seen` numbers layers when the walk first reaches
  // them (Keras's tie-break), `finished` lists them after their inputs (a post-order). Iterative,
  // because the full network is a chain of about a thousand layers.
  std::vector<int> first_seen(n, -1), finished;
  std::vector<bool> done(n, false);
  int counter = 0;
  std::vector<std::pair<int, size_t>> stack{{n - 1, 0}};
  first_seen[n - 1] = counter++;
  while (!stack.empty()) {
    auto& [node, next_input] = stack.back();
    if (next_input < graph[node].inputs.size()) {
      const int input = graph[node].inputs[next_input++];
      if (done[input]) continue;
      if (first_seen[input] < 0) first_seen[input] = counter++;
      stack.push_back({input, 0});
      continue;
    }
    done[node] = true;
    finished.push_back(node);
    stack.pop_back();
  }
  // Consumers before producers (the reversed post-order): a layer's depth is final when reached.
  std::vector<int> depth(n, 0);
  for (auto it = finished.rbegin(); it != finished.rend(); ++it)
    for (int input : graph[*it].inputs) depth[input] = std::max(depth[input], depth[*it] + 1);
  std::vector<int> order(finished.begin(), finished.end());
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return depth[a] != depth[b] ? depth[a] > depth[b] : first_seen[a] < first_seen[b];
  });
  return order;
}

namespace {

// One weighted layer of our encoder with its tensors in Keras order.
struct Target {
  std::string name;          // Keras automatic name (conv2d_5, batch_normalization_5, block35_1_conv)
  std::string slim_name;     // the official file's TF-slim name (Conv2d_1a_3x3, ..._BatchNorm)
  std::string keras_class;   // "Conv2D" or "BatchNormalization"
  std::string keras3_group;  // its group in a Keras 3 file: class and position (layers/conv2d_5)
  std::vector<Tensor*> tensors;
};

// The encoder's weighted layers in Keras's model.layers order.
std::vector<Target> encoder_targets(const InceptionResNetV2& encoder) {
  const std::vector<KerasLayerNode> graph = encoder.keras_graph();
  std::map<std::string, int> per_class;  // Keras 3 numbers the groups of each class from 0
  std::vector<Target> out;
  for (int index : keras_model_layers_order(graph)) {
    const KerasLayerNode& node = graph[index];
    if (!node.unit) continue;
    // The graph hands out const units; the tensors are the encoder's own, which we fill.
    ConvBN& unit = const_cast<ConvBN&>(*node.unit);
    Target t;
    t.keras_class = node.class_name;
    const std::string snake = node.class_name == "Conv2D" ? "conv2d" : "batch_normalization";
    const int k = per_class[snake]++;
    t.keras3_group = "layers/" + snake + (k == 0 ? "" : "_" + std::to_string(k));
    if (node.class_name == "Conv2D") {
      t.name = unit.conv->name();
      t.slim_name = unit.slim_name;
      t.tensors.push_back(&unit.conv->kernel);
      if (unit.conv->use_bias) t.tensors.push_back(&unit.conv->bias);
    } else {
      t.name = unit.bn->name();
      t.slim_name = unit.slim_name + "_BatchNorm";
      // Keras order: trainable first (gamma if scale, beta), then moving mean and variance.
      if (unit.bn->scale) t.tensors.push_back(&unit.bn->gamma);
      if (unit.bn->center) t.tensors.push_back(&unit.bn->beta);
      t.tensors.push_back(&unit.bn->moving_mean);
      t.tensors.push_back(&unit.bn->moving_variance);
    }
    out.push_back(std::move(t));
  }
  return out;
}

using Plan = std::vector<std::pair<Tensor*, const KerasWeight*>>;

std::string ordinal(size_t k) {
  const size_t mod100 = k % 100, mod10 = k % 10;
  const char* suffix = (mod100 >= 11 && mod100 <= 13) ? "th"
                       : mod10 == 1                   ? "st"
                       : mod10 == 2                   ? "nd"
                       : mod10 == 3                   ? "rd"
                                                      : "th";
  return std::to_string(k) + suffix;
}

// Why `layer` cannot fill `t` ("" if it can); on success its tensors are appended to `plan`.
std::string fit(const Target& t, const KerasLayerWeights& layer, const std::string& label,
                Plan& plan) {
  if (layer.weights.size() != t.tensors.size())
    return label + ": file has " + std::to_string(layer.weights.size()) + " weights, expected " +
           std::to_string(t.tensors.size());
  for (size_t k = 0; k < t.tensors.size(); ++k) {
    const KerasWeight& w = layer.weights[k];
    if (Shape(w.shape) != t.tensors[k]->shape())
      return label + " weight " + w.name + ": file shape " + shape_str(w.shape) + ", expected " +
             shape_str(t.tensors[k]->shape());
  }
  for (size_t k = 0; k < t.tensors.size(); ++k) plan.push_back({t.tensors[k], &layer.weights[k]});
  return "";
}

// Rule 1: every layer found under its name. Returns every problem (none: `plan` is complete).
std::vector<std::string> match_by_name(const std::vector<Target>& targets,
                                       const KerasWeightFile& file, bool slim, Plan& plan) {
  std::map<std::string, const KerasLayerWeights*> by_name;
  for (const KerasLayerWeights& l : file.layers) by_name[l.layer_name] = &l;
  std::vector<std::string> problems;
  std::set<std::string> wanted;
  for (const Target& t : targets) {
    const std::string& name = slim ? t.slim_name : t.name;
    wanted.insert(name);
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back("missing layer " + name);
      continue;
    }
    std::string why = fit(t, *it->second, name, plan);
    if (!why.empty()) problems.push_back(why);
  }
  for (const KerasLayerWeights& l : file.layers)
    if (!wanted.count(l.layer_name)) problems.push_back("unexpected layer " + l.layer_name);
  return problems;
}

std::string describe(const Target& t) {
  return t.name + " (" + t.keras_class + ", TF-slim " + t.slim_name + ")";
}

// Rule 2, legacy layout: the file's layers with weights, in layer_names (= model.layers) order,
// pair one to one with the encoder's in that order. Returns the first mismatch ("" if none).
std::string match_legacy_structure(const std::vector<Target>& targets, const KerasWeightFile& file,
                                   Plan& plan) {
  for (size_t i = 0; i < targets.size(); ++i) {
    if (i >= file.layers.size())
      return "the file ends after " + std::to_string(file.layers.size()) +
             " layers with weights; the encoder's " + ordinal(i + 1) + ", " +
             describe(targets[i]) + ", and " + std::to_string(targets.size() - i - 1) +
             " more have no counterpart";
    const KerasLayerWeights& layer = file.layers[i];
    std::string why = fit(targets[i], layer,
                          "the file's " + ordinal(i + 1) + " layer with weights, " +
                              layer.layer_name + ", against the encoder's " + describe(targets[i]),
                          plan);
    if (!why.empty()) return why;
  }
  if (file.layers.size() > targets.size())
    return "the file has " + std::to_string(file.layers.size()) + " layers with weights, " +
           std::to_string(file.layers.size() - targets.size()) + " more than the encoder's " +
           std::to_string(targets.size()) + "; the first extra one is " +
           file.layers[targets.size()].layer_name;
  return "";
}

// Rule 2, Keras 3 layout: group layers/<class>_<k> is the k-th layer of that class in
// model.layers order. Returns the first mismatch ("" if none).
std::string match_keras3_structure(const std::vector<Target>& targets, const KerasWeightFile& file,
                                   Plan& plan) {
  std::map<std::string, const KerasLayerWeights*> by_group;
  for (const KerasLayerWeights& l : file.layers) by_group[l.group_path] = &l;
  std::set<std::string> used;
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    auto it = by_group.find(t.keras3_group);
    if (it == by_group.end())
      return "the file has no group " + t.keras3_group + " (with weights) for the encoder's " +
             ordinal(i + 1) + " layer with weights in Keras's order, " + describe(t);
    used.insert(t.keras3_group);
    std::string why = fit(t, *it->second,
                          it->first + " (" + it->second->layer_name + ") against the encoder's " +
                              describe(t),
                          plan);
    if (!why.empty()) return why;
  }
  for (const KerasLayerWeights& l : file.layers)
    if (!used.count(l.group_path))
      return "the file has a layer the encoder lacks: " + l.group_path + " (" + l.layer_name +
             ", " + std::to_string(l.weights.size()) + " weights)";
  return "";
}

[[noreturn]] void refuse(const std::string& path, const std::vector<std::string>& problems,
                         const std::string& heading) {
  std::ostringstream msg;
  msg << "import_keras_encoder_weights: " << path << " does not fit the encoder (" << heading
      << "; nothing loaded):";
  for (size_t i = 0; i < problems.size() && i < 50; ++i) msg << "\n  " << problems[i];
  if (problems.size() > 50) msg << "\n  ... and " << problems.size() - 50 << " more";
  throw std::runtime_error(msg.str());
}

}  // namespace

std::vector<std::string> keras_weighted_layer_names(const InceptionResNetV2& encoder) {
  std::vector<std::string> names;
  for (const Target& t : encoder_targets(encoder)) names.push_back(t.name);
  return names;
}

KerasImportReport import_keras_encoder_weights(InceptionResNetV2& encoder, const std::string& path) {
  KerasWeightFile file = read_keras_weights(path);
  const std::vector<Target> targets = encoder_targets(encoder);

  // Names first: they pair layers whatever order a file lists them in (the official file's
  // TF-slim names, our own creation-order files). Whichever naming the file uses more decides.
  std::set<std::string> file_names;
  for (const KerasLayerWeights& l : file.layers) file_names.insert(l.layer_name);
  size_t auto_hits = 0, slim_hits = 0;
  for (const Target& t : targets) {
    auto_hits += file_names.count(t.name);
    slim_hits += file_names.count(t.slim_name);
  }
  const bool slim = slim_hits > auto_hits;
  Plan plan;
  std::vector<std::string> name_problems = match_by_name(targets, file, slim, plan);
  KerasImportReport report;
  if (name_problems.empty()) {
    report.matched_by = slim ? "slim-name" : "name";
  } else {
    // Then structure, as Keras's own loaders pair layers: any valid file of the architecture.
    plan.clear();
    const std::string mismatch = file.format == "keras3"
                                     ? match_keras3_structure(targets, file, plan)
                                     : match_legacy_structure(targets, file, plan);
    if (!mismatch.empty()) {
      // A file that mostly uses our names is most likely ours with a few faults: list them all.
      // Otherwise the names say nothing and the first structural difference is the useful fact.
      if (std::max(auto_hits, slim_hits) * 2 >= targets.size())
        refuse(path, name_problems,
               std::to_string(name_problems.size()) + " problem" +
                   (name_problems.size() > 1 ? "s" : "") + " matching by name");
      refuse(path,
             {"its layer names are not the encoder's (" +
                  std::to_string(std::max(auto_hits, slim_hits)) + " of " +
                  std::to_string(targets.size()) +
                  " found), and by structure (Keras's model.layers order, " +
                  (file.format == "keras3" ? "Keras 3 groups layers/<class>_<k>"
                                           : "legacy layer_names order") +
                  ") the first mismatch is: " + mismatch},
             "matching by structure");
    }
    report.matched_by = "structure";
  }
  for (auto& [tensor, w] : plan)
    tensor->copy_(Tensor::from_vector(w->data, w->shape).to(tensor->device()));
  report.layers = static_cast<int>(targets.size());
  report.tensors = static_cast<int>(plan.size());
  return report;
}

}  // namespace glimpse::models
