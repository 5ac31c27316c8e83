// Module bookkeeping: registration, hierarchical names, modes, device moves, the summary table.
#include "nn/module.h"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace glimpse::nn {

Tensor& Module::register_parameter(const std::string& name, Tensor& member, Tensor value) {
  for (const Slot& s : slots_)
    if (s.name == name)
      throw std::invalid_argument("Module '" + name_ + "': parameter '" + name + "' registered twice");
  member = value.detach();
  member.set_requires_grad(trainable_);
  slots_.push_back({name, &member, false});
  return member;
}

Tensor& Module::register_buffer(const std::string& name, Tensor& member, Tensor value) {
  member = value.detach();
  slots_.push_back({name, &member, true});
  return member;
}

std::vector<NamedTensor> Module::named_tensors(const std::string& prefix) const {
  const std::string path = prefix.empty() ? name_ : prefix + "/" + name_;
  std::vector<NamedTensor> out;
  for (const Slot& s : slots_) out.push_back({path + "/" + s.name, s.tensor, s.is_buffer});
  for (const Module* child : children_) {
    auto sub = child->named_tensors(path);
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<NamedTensor> Module::named_parameters(bool trainable_only) const {
  std::vector<NamedTensor> out;
  for (const NamedTensor& t : named_tensors())
    if (!t.is_buffer && (!trainable_only || t.tensor->requires_grad())) out.push_back(t);
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  for (const NamedTensor& t : named_tensors())
    if (t.is_buffer) out.push_back(t);
  return out;
}

std::vector<Tensor*> Module::trainable_parameters() const {
  std::vector<Tensor*> out;
  for (const NamedTensor& t : named_parameters(true)) out.push_back(t.tensor);
  return out;
}

int64_t Module::count_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const NamedTensor& t : named_parameters(trainable_only)) n += t.tensor->numel();
  return n;
}

int64_t Module::count_buffers() const {
  int64_t n = 0;
  for (const NamedTensor& t : named_buffers()) n += t.tensor->numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (Module* c : children_) c->train(on);
}

void Module::set_trainable(bool trainable) {
  trainable_ = trainable;
  for (const Slot& s : slots_)
    if (!s.is_buffer) {
      s.tensor->zero_grad();
      s.tensor->set_requires_grad(trainable);
    }
  for (Module* c : children_) c->set_trainable(trainable);
}

void Module::to(Device device) {
  for (const Slot& s : slots_) {
    if (s.tensor->device() == device) continue;
    const bool needs_grad = s.tensor->requires_grad();
    *s.tensor = s.tensor->detach().to(device);
    if (needs_grad) s.tensor->set_requires_grad(true);
  }
  for (Module* c : children_) c->to(device);
}

Device Module::device() const {
  auto all = named_tensors();
  return all.empty() ? Device::CPU : all.front().tensor->device();
}

void Module::zero_grad() {
  for (const NamedTensor& t : named_parameters()) t.tensor->zero_grad();
}

std::string Module::fingerprint() const {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a offset basis
  auto mix = [&](const void* data, size_t bytes) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  };
  for (const NamedTensor& t : named_tensors()) {
    mix(t.name.data(), t.name.size());
    for (int64_t d : t.tensor->shape()) mix(&d, sizeof d);
    if (t.tensor->dtype() == DType::I32) {
      std::vector<int32_t> v = t.tensor->to_vector_i32();
      mix(v.data(), v.size() * sizeof(int32_t));
    } else {
      std::vector<float> v = t.tensor->to_vector();
      mix(v.data(), v.size() * sizeof(float));
    }
  }
  std::ostringstream out;
  out << std::hex << std::setw(16) << std::setfill('0') << hash;
  return out.str();
}

void Module::summary_rows(std::vector<std::vector<std::string>>& rows, const std::string& prefix,
                          int depth) const {
  int64_t own = 0;
  for (const Slot& s : slots_) own += s.tensor->numel();
  std::string shapes;
  for (const Slot& s : slots_) shapes += (shapes.empty() ? "" : " ") + s.name + shape_str(s.tensor->shape());
  if (depth > 0 && (own > 0 || children_.empty()))
    rows.push_back({std::string(2 * (depth - 1), ' ') + name_ + " (" + type_name() + ")", shapes,
                    std::to_string(own)});
  else if (depth > 0)
    rows.push_back({std::string(2 * (depth - 1), ' ') + name_ + " (" + type_name() + ")", "",
                    ""});
  for (const Module* c : children_) c->summary_rows(rows, prefix, depth + 1);
}

namespace {
std::string with_commas(int64_t n) {
  // Built back to front; a comma before every group of three digits.
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}
}  // namespace

std::string Module::summary() const {
  std::vector<std::vector<std::string>> rows;
  summary_rows(rows, "", 0);
  size_t w0 = 20, w1 = 10;
  for (auto& r : rows) {
    w0 = std::max(w0, r[0].size());
    w1 = std::min<size_t>(60, std::max(w1, r[1].size()));
  }
  std::ostringstream out;
  out << "Model: \"" << name_ << "\"\n";
  const std::string rule(w0 + w1 + 18, '-');
  out << rule << "\n"
      << std::left << std::setw(w0 + 2) << "Layer (type)" << std::setw(w1 + 2) << "Weights"
      << "Param #\n"
      << rule << "\n";
  for (auto& r : rows) {
    std::string weights = r[1].size() > w1 ? r[1].substr(0, w1 - 3) + "..." : r[1];
    out << std::left << std::setw(w0 + 2) << r[0] << std::setw(w1 + 2) << weights
        << (r[2].empty() ? "" : with_commas(std::stoll(r[2]))) << "\n";
  }
  const int64_t total = count_parameters() + count_buffers();
  const int64_t trainable = count_parameters(true);
  out << rule << "\n"
      << "Total params: " << with_commas(total) << "\n"
      << "Trainable params: " << with_commas(trainable) << "\n"
      << "Non-trainable params: " << with_commas(total - trainable) << "\n";
  return out.str();
}

}  // namespace glimpse::nn
