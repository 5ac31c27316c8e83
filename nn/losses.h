// Losses. The captioner's loss is Keras's sparse categorical cross-entropy from logits with the
// padding mask of the notebook: sum(loss * mask) / sum(mask), mask = (target != 0).
#pragma once
#include "nn/layers.h"
#include "tensor/ops.h"

namespace glimpse::nn {

// logits [..., V], targets int32 [...]; padding id 0 is ignored.
inline Tensor masked_sparse_categorical_crossentropy(const Tensor& logits, const Tensor& targets) {
  return cross_entropy(logits, targets, /*ignore_index=*/0);
}

// The output layer and that loss together:
//   masked_sparse_categorical_crossentropy(output.forward(hidden), targets),
// the same value and gradients, with `output` applied only to the rows whose target is not the
// padding id. A Dense layer maps each row on its own, so the padding rows' logits, which the mask
// multiplies by zero, need never be computed: with a large vocabulary the output projection is
// most of a training step, and the notebook decoder's batches are about 20% padding
// (bench/bench_decoder.cpp). hidden [..., in], targets int32 [...] on any device: they are read on
// the host to pick the rows, so host targets save a copy back from an accelerator.
Tensor dense_masked_crossentropy(const Dense& output, const Tensor& hidden, const Tensor& targets);

// Mean squared error (used by the optimizer golden test's tiny model).
inline Tensor mean_squared_error(const Tensor& prediction, const Tensor& target) {
  return mean(square(sub(prediction, target)));
}

}  // namespace glimpse::nn
