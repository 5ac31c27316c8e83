// Module: the base of every layer and model. It owns nothing magic — each subclass keeps its
// tensors as ordinary members and registers their addresses under Keras-like names, so that
// checkpoints and weight import can walk "decoder/gru/recurrent_kernel" without knowing the class.
//
// - parameters: trainable weights (requires_grad while the module is trainable);
// - buffers: state that is saved but not trained (BatchNorm's moving statistics);
// - training mode (train/eval) and `trainable` (frozen => no gradients, and a frozen BatchNorm
//   runs in inference mode, as in Keras).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace glimpse::nn {

struct NamedTensor {
  std::string name;  // full path, e.g. "decoder/gru/kernel"
  Tensor* tensor;    // points at the module's member, so loading writes into the live model
  bool is_buffer;
};

class Module {
 public:
  explicit Module(std::string name) : name_(std::move(name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const std::string& name() const { return name_; }
  virtual std::string type_name() const { return "Module"; }

  // Every parameter and buffer below this module, depth first, in registration order.
  std::vector<NamedTensor> named_tensors(const std::string& prefix = "") const;
  std::vector<NamedTensor> named_parameters(bool trainable_only = false) const;
  std::vector<NamedTensor> named_buffers() const;
  // Parameters that currently take part in training (trainable and requiring grad).
  std::vector<Tensor*> trainable_parameters() const;
  int64_t count_parameters(bool trainable_only = false) const;
  int64_t count_buffers() const;

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }
  // Freezing a module freezes everything below it.
  void set_trainable(bool trainable);
  bool trainable() const { return trainable_; }
  // Whether stateful layers (BatchNorm, Dropout) should use their training behaviour now.
  bool training_behaviour() const { return training_ && trainable_; }

  void to(Device device);   // moves every parameter and buffer
  Device device() const;    // the device of the first parameter (CPU when there is none)
  void zero_grad();
  // A 64-bit FNV-1a hash (hex) over every parameter's and buffer's name, shape and bytes: equal
  // fingerprints mean equal weights, so caches and checkpoints can tell which weights made them.
  std::string fingerprint() const;

  // A Keras-like table: one row per direct or nested layer with its parameter count, then totals.
  std::string summary() const;
  const std::vector<Module*>& children() const { return children_; }

 protected:
  Tensor& register_parameter(const std::string& name, Tensor& member, Tensor value);
  Tensor& register_buffer(const std::string& name, Tensor& member, Tensor value);
  template <class M>
  M& register_module(std::unique_ptr<M>& member, std::unique_ptr<M> module) {
    member = std::move(module);
    children_.push_back(member.get());
    return *member;
  }
  void register_child(Module& child) { children_.push_back(&child); }

 private:
  struct Slot {
    std::string name;
    Tensor* tensor;
    bool is_buffer;
  };
  void summary_rows(std::vector<std::vector<std::string>>& rows, const std::string& prefix,
                    int depth) const;

  std::string name_;
  std::vector<Slot> slots_;
  std::vector<Module*> children_;
  bool training_ = true;
  bool trainable_ = true;
};

}  // namespace glimpse::nn
