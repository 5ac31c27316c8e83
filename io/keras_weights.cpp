// io/keras_weights.cpp — format detection and the two Keras weight-file walkers (legacy
// layer_names/weight_names attributes; Keras 3 layers/<class>/vars groups). See the header for
// what each format records.

#include "io/keras_weights.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>

#include "io/hdf5.h"

namespace glimpse {

namespace {

[[noreturn]] void fail(const H5File& file, const std::string& what) {
  throw std::runtime_error("read_keras_weights: " + file.path() + ": " + what);
}

std::string quoted(const std::string& text) { return "'" + text + "'"; }

std::string join_path(const std::string& parent, const std::string& child) {
  return parent.empty() || parent == "/" ? child : parent + "/" + child;
}

// The list stored under `name`, or Keras's split form name0, name1, ...; nullopt if neither.
std::optional<std::vector<std::string>> read_split_string_list(const H5File& file,
                                                               const std::string& object_path,
                                                               const std::string& name) {
  if (file.has_attr(object_path, name)) return file.read_string_array_attr(object_path, name);
  if (!file.has_attr(object_path, name + "0")) return std::nullopt;
  std::vector<std::string> values;
  for (int chunk = 0; file.has_attr(object_path, name + std::to_string(chunk)); ++chunk) {
    std::vector<std::string> part =
        file.read_string_array_attr(object_path, name + std::to_string(chunk));
    values.insert(values.end(), part.begin(), part.end());
  }
  return values;
}

std::string optional_string_attr(const H5File& file, const std::string& object_path,
                                 const std::string& name) {
  return file.has_attr(object_path, name) ? file.read_string_attr(object_path, name) : "";
}

bool has_layer_names(const H5File& file, const std::string& object_path) {
  return file.has_attr(object_path, "layer_names") || file.has_attr(object_path, "layer_names0");
}

// ---- Keras 2 legacy

KerasWeightFile read_legacy(const H5File& file, const std::string& weights_root) {
  KerasWeightFile result;
  result.format = "keras2-legacy";
  // model.save() writes the metadata both at the root and on model_weights; save_weights() only
  // at the root.
  const std::string root = weights_root.empty() ? "/" : weights_root;
  result.keras_version = optional_string_attr(file, root, "keras_version");
  if (result.keras_version.empty())
    result.keras_version = optional_string_attr(file, "/", "keras_version");
  result.backend = optional_string_attr(file, root, "backend");
  if (result.backend.empty()) result.backend = optional_string_attr(file, "/", "backend");

  std::vector<std::string> layer_names = *read_split_string_list(file, root, "layer_names");
  for (const std::string& layer_name : layer_names) {
    const std::string group_path = join_path(weights_root, layer_name);
    if (!file.is_group(group_path))
      fail(file, "layer " + quoted(layer_name) +
                     " is listed in layer_names but the file has no group " + quoted(group_path));
    std::optional<std::vector<std::string>> weight_names =
        read_split_string_list(file, group_path, "weight_names");
    if (!weight_names)
      fail(file, "layer group " + quoted(group_path) + " has no 'weight_names' attribute");
    if (weight_names->empty()) continue;

    KerasLayerWeights layer;
    layer.layer_name = layer_name;
    layer.group_path = group_path;
    for (const std::string& weight_name : *weight_names) {
      const std::string dataset_path = group_path + "/" + weight_name;
      if (!file.is_dataset(dataset_path))
        fail(file, "layer " + quoted(layer_name) + ": weight " + quoted(weight_name) +
                       " is listed in weight_names but there is no dataset " +
                       quoted(dataset_path));
      ArrayData array = file.read(dataset_path);
      layer.weights.push_back({weight_name, std::move(array.shape), std::move(array.data)});
    }
    result.layers.push_back(std::move(layer));
  }
  return result;
}

// ---- Keras 3

const char* const kKeras3Containers[] = {"layers", "_layer_checkpoint_dependencies"};

std::optional<std::string> nested_container(const H5File& file, const std::string& group_path) {
  for (const char* container : kKeras3Containers)
    if (file.is_group(join_path(group_path, container))) return join_path(group_path, container);
  return std::nullopt;
}

std::vector<std::string> child_groups(const H5File& file, const std::string& group_path) {
  std::vector<std::string> names;
  for (const H5Child& child : file.list(group_path))
    if (child.kind == H5ObjectKind::group) names.push_back(child.name);
  return names;
}

// Keras visits a layer's attributes sorted by name with private ("_...") ones last.
bool keras_visit_order(const std::string& a, const std::string& b) {
  bool a_private = !a.empty() && a[0] == '_';
  bool b_private = !b.empty() && b[0] == '_';
  if (a_private != b_private) return b_private;
  return natural_less(a, b);
}

// Own variables (group/vars/<i>) first, then those of sub-objects, depth first.
void collect_keras3_weights(const H5File& file, const std::string& group_path,
                            const std::string& name_prefix, std::vector<KerasWeight>& weights) {
  const std::string vars_path = join_path(group_path, "vars");
  if (file.is_group(vars_path)) {
    std::vector<std::string> variable_names;
    for (const H5Child& child : file.list(vars_path))
      if (child.kind == H5ObjectKind::dataset) variable_names.push_back(child.name);
    std::sort(variable_names.begin(), variable_names.end(), natural_less);
    for (const std::string& variable_name : variable_names) {
      ArrayData array = file.read(join_path(vars_path, variable_name));
      weights.push_back(
          {name_prefix + "vars/" + variable_name, std::move(array.shape), std::move(array.data)});
    }
  }
  std::vector<std::string> children = child_groups(file, group_path);
  children.erase(std::remove(children.begin(), children.end(), "vars"), children.end());
  std::sort(children.begin(), children.end(), keras_visit_order);
  for (const std::string& child : children)
    collect_keras3_weights(file, join_path(group_path, child), name_prefix + child + "/", weights);
}

void collect_keras3_layers(const H5File& file, const std::string& container_path,
                           std::vector<KerasLayerWeights>& layers) {
  std::vector<std::string> children = child_groups(file, container_path);
  std::sort(children.begin(), children.end(), natural_less);
  for (const std::string& child : children) {
    const std::string group_path = join_path(container_path, child);
    if (std::optional<std::string> nested = nested_container(file, group_path)) {
      collect_keras3_layers(file, *nested, layers);
      continue;
    }
    KerasLayerWeights layer;
    const std::string vars_path = join_path(group_path, "vars");
    layer.layer_name = file.is_group(vars_path) && file.has_attr(vars_path, "name")
                           ? file.read_string_attr(vars_path, "name")
                           : child;
    layer.group_path = group_path;
    KerasNameParts parts = split_keras_auto_name(child);
    layer.keras3_class = parts.base;
    layer.keras3_class_index = parts.index;
    collect_keras3_weights(file, group_path, "", layer.weights);
    if (!layer.weights.empty()) layers.push_back(std::move(layer));
  }
}

KerasWeightFile read_keras3(const H5File& file, const std::string& container_path) {
  KerasWeightFile result;
  result.format = "keras3";
  collect_keras3_layers(file, container_path, result.layers);
  return result;
}

}  // namespace

KerasWeightFile read_keras_weights(const H5File& file) {
  if (has_layer_names(file, "/")) return read_legacy(file, "");
  if (file.is_group("model_weights") && has_layer_names(file, "model_weights"))
    return read_legacy(file, "model_weights");
  for (const char* container : kKeras3Containers)
    if (file.is_group(container)) return read_keras3(file, container);
  fail(file,
       "not a Keras weight file (no 'layer_names' attribute at the root or on 'model_weights' "
       "for the Keras 2 format, and no 'layers' group for the Keras 3 format)");
}

KerasWeightFile read_keras_weights(const std::string& path) {
  H5File file = H5File::open_read(path);
  return read_keras_weights(file);
}

const KerasLayerWeights& find_keras_layer(const KerasWeightFile& weights,
                                          const std::string& layer_name) {
  for (const KerasLayerWeights& layer : weights.layers)
    if (layer.layer_name == layer_name) return layer;
  std::string available;
  for (size_t i = 0; i < weights.layers.size() && i < 8; ++i)
    available += (i ? ", " : "") + weights.layers[i].layer_name;
  if (weights.layers.size() > 8) available += ", ...";
  throw std::runtime_error("find_keras_layer: no layer with weights named " + quoted(layer_name) +
                           " among " + std::to_string(weights.layers.size()) + " (" + available +
                           ")");
}

std::vector<std::string> read_keras_string_list_attr(const H5File& file,
                                                     const std::string& object_path,
                                                     const std::string& name) {
  std::optional<std::vector<std::string>> values = read_split_string_list(file, object_path, name);
  if (!values)
    throw std::runtime_error("read_keras_string_list_attr: " + file.path() + ": " +
                             quoted(object_path) + " has no attribute " + quoted(name) + " (nor " +
                             quoted(name + "0") + ", " + quoted(name + "1") + ", ...)");
  return *values;
}

KerasNameParts split_keras_auto_name(const std::string& name) {
  size_t underscore = name.rfind('_');
  if (underscore == std::string::npos || underscore == 0 || underscore + 1 == name.size())
    return {name, 0};
  std::string suffix = name.substr(underscore + 1);
  bool all_digits = std::all_of(suffix.begin(), suffix.end(),
                                [](unsigned char c) { return std::isdigit(c) != 0; });
  if (!all_digits || suffix.size() > 18) return {name, 0};
  return {name.substr(0, underscore), std::stoll(suffix)};
}

bool natural_less(const std::string& a, const std::string& b) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      size_t a_end = i, b_end = j;
      while (a_end < a.size() && is_digit(a[a_end])) ++a_end;
      while (b_end < b.size() && is_digit(b[b_end])) ++b_end;
      // Compare the runs as numbers: skip leading zeros, then a longer run is bigger.
      size_t a_start = i, b_start = j;
      while (a_start + 1 < a_end && a[a_start] == '0') ++a_start;
      while (b_start + 1 < b_end && b[b_start] == '0') ++b_start;
      size_t a_length = a_end - a_start, b_length = b_end - b_start;
      if (a_length != b_length) return a_length < b_length;
      int order = a.compare(a_start, a_length, b, b_start, b_length);
      if (order != 0) return order < 0;
      i = a_end;
      j = b_end;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i;
    ++j;
  }
  if (i < a.size() || j < b.size()) return j < b.size() && i >= a.size();
  return a < b;  // equal up to leading zeros: keep a strict, deterministic order
}

}  // namespace glimpse
