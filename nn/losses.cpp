#include "nn/losses.h"

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace glimpse::nn {

Tensor dense_masked_crossentropy(const Dense& output, const Tensor& hidden, const Tensor& targets) {
  constexpr int32_t kPadding = 0;
  if (!hidden.defined() || hidden.rank() < 1 || hidden.shape().back() != output.in_features)
    throw std::invalid_argument("dense_masked_crossentropy: hidden must be [..., " +
                                std::to_string(output.in_features) + "], got " +
                                (hidden.defined() ? shape_str(hidden.shape()) : "undefined"));
  const Shape rows_shape(hidden.shape().begin(), hidden.shape().end() - 1);
  if (!targets.defined() || targets.shape() != rows_shape || targets.dtype() != DType::I32)
    throw std::invalid_argument("dense_masked_crossentropy: targets must be int32 " +
                                shape_str(rows_shape) + " to match hidden " +
                                shape_str(hidden.shape()));
  // The rows that count, in order (the host copy is one id per token).
  const Tensor host_targets = targets.to(Device::CPU).contiguous();
  const int32_t* ids = host_targets.data<int32_t>();
  const int64_t rows = host_targets.numel();
  std::vector<int32_t> kept_rows, kept_targets;
  for (int64_t r = 0; r < rows; ++r) {
    if (ids[r] == kPadding) continue;
    if (r > INT32_MAX) throw std::invalid_argument("dense_masked_crossentropy: too many rows");
    kept_rows.push_back(static_cast<int32_t>(r));
    kept_targets.push_back(ids[r]);
  }
  // No padding, or nothing but padding: the plain composition (whose all-padding loss is 0).
  if (kept_rows.empty() || static_cast<int64_t>(kept_rows.size()) == rows)
    return masked_sparse_categorical_crossentropy(output.forward(hidden),
                                                  targets.to(hidden.device()));

  const int64_t kept = static_cast<int64_t>(kept_rows.size());
  const Tensor flat = reshape(hidden, {rows, output.in_features});
  const Tensor picked = gather(flat, Tensor::from_vector(kept_rows, {kept}).to(hidden.device()), 0);
  const Tensor picked_targets = Tensor::from_vector(kept_targets, {kept}).to(hidden.device());
  // Same mean: sum over the kept rows / their count, which is what the mask gave.
  return masked_sparse_categorical_crossentropy(output.forward(picked), picked_targets);
}

}  // namespace glimpse::nn
