// Private to the CUDA backend: reductions across a warp or a block, and the "row group" that the
// row-wise kernels (softmax, cross-entropy, layer norm, row sums, argmax, top-k) are written with.
//
// A row group is the set of threads that work on one row together: a single warp when rows are
// short (several rows per block, shuffles only), the whole block when rows are long. Kernels take
// the group size as a template parameter, so one kernel body serves both shapes.
//
// Every reduction here combines values in an order fixed by the launch shape, so results are
// reproducible run to run, and all threads of the group receive the same (bitwise) result.
#pragma once
#include <cstdint>

#include "cuda/launch.cuh"

namespace glimpse::cuda::detail {

constexpr unsigned int kFullWarpMask = 0xffffffffu;
constexpr int kWarpSize = 32;

// A candidate for "the largest element": its value and its index (index < 0 means no candidate).
struct ValueIndex {
  float value;
  int32_t index;
};

__device__ inline bool is_nan(float v) { return v != v; }

// The order of maxima (reduce_max, argmax_rows, as on the CPU): a NaN ranks above every number so
// that a NaN is never hidden, larger numbers rank higher, and equal values go to the lower index.
// The empty candidate ranks last. A strict total order, so any reduction tree finds the same
// winner as the CPU's left-to-right scan.
struct MaxOrder {
  __device__ static bool ranks_before(ValueIndex a, ValueIndex b) {
    if (a.index < 0) return false;
    if (b.index < 0) return true;
    if (is_nan(a.value) || is_nan(b.value)) {
      return is_nan(a.value) && is_nan(b.value) ? a.index < b.index : is_nan(a.value);
    }
    return a.value > b.value || (a.value == b.value && a.index < b.index);
  }
};

// The order of top-k (as on the CPU): larger first, lower index on ties, NaN after every number.
struct TopkOrder {
  __device__ static bool ranks_before(ValueIndex a, ValueIndex b) {
    if (a.index < 0) return false;
    if (b.index < 0) return true;
    if (is_nan(a.value) || is_nan(b.value)) {
      return is_nan(a.value) && is_nan(b.value) ? a.index < b.index : is_nan(b.value);
    }
    return a.value > b.value || (a.value == b.value && a.index < b.index);
  }
};

struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
// Keeps whichever candidate ranks first in Order.
template <class Order>
struct BestOp {
  __device__ ValueIndex operator()(ValueIndex a, ValueIndex b) const {
    return Order::ranks_before(b, a) ? b : a;
  }
};

__device__ inline float shuffle_xor(float v, int lane_mask) {
  return __shfl_xor_sync(kFullWarpMask, v, lane_mask);
}
__device__ inline ValueIndex shuffle_xor(ValueIndex v, int lane_mask) {
  return {__shfl_xor_sync(kFullWarpMask, v.value, lane_mask),
          __shfl_xor_sync(kFullWarpMask, v.index, lane_mask)};
}

// Butterfly reduction: every lane ends with the combination of all 32 lanes' values.
template <class T, class Combine>
__device__ T warp_reduce(T value, Combine combine) {
  for (int lane_mask = kWarpSize / 2; lane_mask > 0; lane_mask /= 2) {
    value = combine(value, shuffle_xor(value, lane_mask));
  }
  return value;
}

// Whole-block reduction (blockDim.x a multiple of 32); every thread of the block must call it.
// Each thread combines the warps' partial results itself, in warp order: no second barrier needed.
template <class T, class Combine>
__device__ T block_reduce(T value, Combine combine) {
  __shared__ T warp_results[kWarpSize];
  value = warp_reduce(value, combine);
  __syncthreads();  // the previous call's readers are done with warp_results
  if (threadIdx.x % kWarpSize == 0) warp_results[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  value = warp_results[0];
  for (int w = 1; w < int(blockDim.x / kWarpSize); ++w) value = combine(value, warp_results[w]);
  return value;
}

// kThreads = 32: a warp per row (any block size that is a multiple of 32);
// otherwise the whole block (blockDim.x == kThreads) per row.
template <int kThreads>
struct RowGroup {
  static_assert(kThreads % kWarpSize == 0 && kThreads <= 1024, "row group: whole warps");

  __device__ static int lane() { return threadIdx.x % kThreads; }
  __device__ static int64_t first_row() {
    return int64_t(blockIdx.x) * (blockDim.x / kThreads) + threadIdx.x / kThreads;
  }
  __device__ static int64_t row_stride() { return int64_t(gridDim.x) * (blockDim.x / kThreads); }

  template <class T, class Combine>
  __device__ static T reduce(T value, Combine combine) {
    if constexpr (kThreads == kWarpSize) {
      return warp_reduce(value, combine);
    } else {
      return block_reduce(value, combine);
    }
  }
};

// Rows up to this many columns get a warp each; longer rows a block of kRowBlockThreads.
constexpr int64_t kWarpRowMaxColumns = 1024;
constexpr int kRowBlockThreads = 512;

// How to launch a row kernel over `rows` rows of `cols` columns: with warp_per_row, instantiate
// the kernel with RowGroup<32>, otherwise with RowGroup<kRowBlockThreads>.
struct RowLaunch {
  bool warp_per_row;
  unsigned int blocks;
  unsigned int threads;
};

inline RowLaunch row_launch(int64_t rows, int64_t cols) {
  if (cols <= kWarpRowMaxColumns) {
    constexpr int kRowsPerBlock = kBlockThreads / kWarpSize;
    return {true, blocks_for(rows, kRowsPerBlock), static_cast<unsigned int>(kBlockThreads)};
  }
  return {false, blocks_for(rows, 1), static_cast<unsigned int>(kRowBlockThreads)};
}

}  // namespace glimpse::cuda::detail
