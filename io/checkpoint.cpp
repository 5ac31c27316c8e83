// Checkpoint save/load (see checkpoint.h).
#include "io/checkpoint.h"

#include <chrono>
#include <ctime>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "io/hdf5.h"

namespace glimpse {

namespace {

void write_tensor(H5File& file, const std::string& path, const Tensor& t) {
  std::vector<float> values = t.to_vector();
  file.write(path, t.shape(), std::span<const float>(values));
}

// Every dataset below `root`, as names relative to it.
void collect_datasets(const H5File& file, const std::string& root, const std::string& prefix,
                      std::vector<std::string>& out) {
  for (const H5Child& c : file.list(root)) {
    const std::string rel = prefix.empty() ? c.name : prefix + "/" + c.name;
    if (c.kind == H5ObjectKind::group) collect_datasets(file, root + "/" + c.name, rel, out);
    else if (c.kind == H5ObjectKind::dataset) out.push_back(rel);
  }
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

void save_checkpoint(const std::string& path, const std::vector<nn::NamedTensor>& model_state,
                     const std::string& optimizer_type,
                     const std::vector<nn::NamedTensor>& optimizer_state,
                     int64_t optimizer_iterations, const CheckpointContents& meta) {
  write_file_atomically(path, [&](H5File& file) {
    file.set_string_attr("/", "format", "glimpse-checkpoint");
    file.set_int_attr("/", "format_version", kCheckpointFormatVersion);
    file.set_string_attr("/", "model_config", meta.model_config.dump());
    file.set_string_attr("/", "progress", meta.progress.dump());
    file.set_string_attr("/", "saved_at", now_iso8601());
    for (const nn::NamedTensor& t : model_state) write_tensor(file, "/model/" + t.name, *t.tensor);
    file.create_group("/optimizer");
    file.set_string_attr("/optimizer", "type", optimizer_type);
    file.set_int_attr("/optimizer", "iterations", optimizer_iterations);
    for (const nn::NamedTensor& t : optimizer_state)
      write_tensor(file, "/optimizer/" + t.name, *t.tensor);
    if (!meta.vocabulary.empty()) file.write_strings("/tokenizer/vocabulary", meta.vocabulary);
  });
}

CheckpointContents read_checkpoint_meta(const std::string& path) {
  H5File file = H5File::open_read(path);
  auto bad = [&](const std::string& why) {
    return std::runtime_error("checkpoint " + path + ": " + why);
  };
  if (!file.has_attr("/", "format") || file.read_string_attr("/", "format") != "glimpse-checkpoint")
    throw bad("not a glimpse checkpoint (no format = \"glimpse-checkpoint\" attribute)");
  const int64_t version = file.read_int_attr("/", "format_version");
  if (version != kCheckpointFormatVersion)
    throw bad("format version " + std::to_string(version) + " is not supported (this build reads " +
              std::to_string(kCheckpointFormatVersion) + ")");
  CheckpointContents c;
  // The JSON library's own parse errors name neither the file nor the attribute.
  auto parse_json_attr = [&](const char* name) {
    nlohmann::json value = nlohmann::json::parse(file.read_string_attr("/", name), nullptr, false);
    if (value.is_discarded()) throw bad(std::string(name) + " is not valid JSON");
    return value;
  };
  c.model_config = parse_json_attr("model_config");
  c.progress = parse_json_attr("progress");
  if (file.exists("/tokenizer/vocabulary")) c.vocabulary = file.read_strings("/tokenizer/vocabulary");
  if (file.exists("/optimizer")) {
    c.optimizer_type = file.read_string_attr("/optimizer", "type");
    c.optimizer_iterations = file.read_int_attr("/optimizer", "iterations");
  }
  return c;
}

void load_checkpoint_tensors(const std::string& path,
                             const std::vector<nn::NamedTensor>& model_state,
                             const std::vector<nn::NamedTensor>* optimizer_state) {
  read_checkpoint_meta(path);  // validates format and version
  H5File file = H5File::open_read(path);
  std::vector<std::string> problems;
  std::vector<std::pair<const nn::NamedTensor*, std::string>> plan;

  auto check_group = [&](const std::string& root, const std::vector<nn::NamedTensor>& wanted) {
    std::vector<std::string> present;
    if (file.exists(root)) collect_datasets(file, root, "", present);
    std::set<std::string> present_set(present.begin(), present.end());
    std::set<std::string> wanted_set;
    for (const nn::NamedTensor& t : wanted) {
      wanted_set.insert(t.name);
      const std::string p = root + "/" + t.name;
      if (!present_set.count(t.name)) {
        problems.push_back("missing " + p + " (expected shape " + shape_str(t.tensor->shape()) + ")");
        continue;
      }
      Shape shape = file.shape(p);
      if (shape != t.tensor->shape()) {
        problems.push_back("shape mismatch for " + p + ": file has " + shape_str(shape) +
                           ", model expects " + shape_str(t.tensor->shape()));
        continue;
      }
      plan.push_back({&t, p});
    }
    for (const std::string& name : present)
      if (!wanted_set.count(name)) problems.push_back("unexpected " + root + "/" + name);
  };
  check_group("/model", model_state);
  if (optimizer_state) check_group("/optimizer", *optimizer_state);
  if (!problems.empty()) {
    std::ostringstream msg;
    msg << "checkpoint " << path << " does not match the model (" << problems.size()
        << " problem" << (problems.size() > 1 ? "s" : "") << "):";
    for (const std::string& p : problems) msg << "\n  " << p;
    throw std::runtime_error(msg.str());
  }
  // Read everything first, then assign, so a read error leaves the model untouched.
  std::vector<Tensor> loaded;
  for (auto& [t, p] : plan) {
    std::vector<float> values = file.read_float(p, t->tensor->shape());
    loaded.push_back(Tensor::from_vector(values, t->tensor->shape()).to(t->tensor->device()));
  }
  for (size_t i = 0; i < plan.size(); ++i) plan[i].first->tensor->copy_(loaded[i]);
}

}  // namespace glimpse
