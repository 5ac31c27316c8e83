// Private to the CUDA backend: strided index spaces (broadcast binary ops, strided gathers) with
// their axes simplified on the host before launch, so the per-element index arithmetic on the GPU
// runs over as few axes as possible.
#pragma once
#include <cstdint>

#include "tensor/kernels.h"

namespace glimpse::cuda::detail {

// Row-major index space `shape` and, per operand, the element stride along each axis.
template <int kOperands>
struct CollapsedLayout {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[kOperands][kMaxRank] = {};

  int64_t size() const {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    return n;
  }

  // Element offset of flat index i within `operand`.
  __device__ int64_t offset(int operand, int64_t i) const {
    int64_t offset = 0;
    for (int d = rank - 1; d >= 0; --d) {
      offset += (i % shape[d]) * strides[operand][d];
      i /= shape[d];
    }
    return offset;
  }
};

// Drops axes of size 1 and merges each axis into the previous one wherever every operand steps
// through the pair as through one axis. Same-shape contiguous operands collapse to rank 1, a bias
// add [rows, cols] + [cols] to rank 2. A zero-size axis leaves size() == 0.
template <int kOperands>
CollapsedLayout<kOperands> collapse_layout(int rank, const int64_t* shape,
                                           const int64_t* const (&strides)[kOperands]) {
  CollapsedLayout<kOperands> out;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    bool mergeable = out.rank > 0;
    for (int k = 0; k < kOperands && mergeable; ++k) {
      mergeable = out.strides[k][out.rank - 1] == strides[k][d] * shape[d];
    }
    if (mergeable) {
      out.shape[out.rank - 1] *= shape[d];
      for (int k = 0; k < kOperands; ++k) out.strides[k][out.rank - 1] = strides[k][d];
    } else {
      out.shape[out.rank] = shape[d];
      for (int k = 0; k < kOperands; ++k) out.strides[k][out.rank] = strides[k][d];
      ++out.rank;
    }
  }
  return out;  // rank 0: a single element at offset 0
}

}  // namespace glimpse::cuda::detail
