// Strided index spaces with their axes simplified, shared by the CPU and CUDA backends (broadcast
// binary ops, strided gathers): the fewer the axes, the cheaper the per-element index arithmetic.
// Private to the backends; the ops layer hands kernels BroadcastLayout / StridedLayout.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"
#include "tensor/kernels.h"

namespace glimpse::detail {

// Row-major index space `shape` and, per operand, the element stride along each axis.
template <int kOperands>
struct CollapsedLayout {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[kOperands][kMaxRank] = {};

  GLIMPSE_HOST_DEVICE int64_t size() const {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    return n;
  }

  // Element offset of flat index i within `operand` (divisions per axis: the GPU's way; the CPU
  // walks rows with an odometer instead, cpu/kernels_impl.h walk_rows).
  GLIMPSE_HOST_DEVICE int64_t offset(int operand, int64_t i) const {
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
// add [rows, cols] + [cols] to rank 2. The result has rank >= 1: a single element is shape [1]
// with stride 0. A zero-size axis leaves size() == 0.
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
  if (out.rank == 0) {  // a single element
    out.rank = 1;
    out.shape[0] = 1;
  }
  return out;
}

}  // namespace glimpse::detail
