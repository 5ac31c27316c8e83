// Losses. The captioner's loss is Keras's sparse categorical cross-entropy from logits with the
// padding mask of the notebook: sum(loss * mask) / sum(mask), mask = (target != 0).
#pragma once
#include "tensor/ops.h"

namespace glimpse::nn {

// logits [..., V], targets int32 [...]; padding id 0 is ignored.
inline Tensor masked_sparse_categorical_crossentropy(const Tensor& logits, const Tensor& targets) {
  return cross_entropy(logits, targets, /*ignore_index=*/0);
}

// Mean squared error (used by the optimizer golden test's tiny model).
inline Tensor mean_squared_error(const Tensor& prediction, const Tensor& target) {
  return mean(square(sub(prediction, target)));
}

}  // namespace glimpse::nn
