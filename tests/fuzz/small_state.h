// The small model state that the checkpoint fuzz target loads into, shared with make_seeds.cpp,
// which writes the seed checkpoints for it: both must agree on every name and shape, or the
// seeds would only ever reach the "does not match the model" error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/tensor.h"

namespace glimpse::fuzz {

// A few tensors named and shaped like a (very) small captioner's, with Adam moments for two of
// them: nested groups, ranks 1 to 3 and an optimizer section, without the ~1 MB a real model
// needs. Filled with `fill`, so a failed load can be checked to have changed nothing.
struct SmallState {
  std::vector<std::unique_ptr<Tensor>> storage;
  std::vector<nn::NamedTensor> model, optimizer;

  explicit SmallState(float fill) {
    auto add = [&](std::vector<nn::NamedTensor>& to, const std::string& name, const Shape& shape) {
      storage.push_back(std::make_unique<Tensor>(Tensor::full(shape, fill)));
      to.push_back({name, storage.back().get(), false});
    };
    add(model, "captioner/embedding/embeddings", {5, 3});
    add(model, "captioner/gru/kernel", {3, 6});
    add(model, "captioner/gru/bias", {2, 6});
    add(model, "captioner/feature_dense/kernel", {1, 2, 4});
    add(model, "captioner/dense/bias", {5});
    add(optimizer, "adam/m/captioner/dense/bias", {5});
    add(optimizer, "adam/v/captioner/dense/bias", {5});
    add(optimizer, "adam/m/captioner/gru/kernel", {3, 6});
  }

  // True when every tensor still holds only `fill`.
  bool all_equal(float fill) const {
    for (const auto& t : storage)
      for (float v : t->to_vector())
        if (!(v == fill)) return false;
    return true;
  }
};

}  // namespace glimpse::fuzz
