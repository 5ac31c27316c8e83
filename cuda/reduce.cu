// Reductions: sum, product (and its backward) and max over the middle axis of x viewed as
// [outer, R, inner] (max with the first winning index, and its backward), and the row-wise argmax
// and top-k.
//
// Two shapes of work: when the reduced elements are contiguous (inner == 1) or the outputs are few,
// a row group (warp or block, see row_reduce.cuh) cooperates on each output; when there are many
// outputs side by side (inner > 1), neighbouring threads take neighbouring outputs so their reads
// are coalesced. Sums use the deterministic column_sums for the latter.
#include <cmath>

#include "cuda/column_sums.cuh"
#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"
#include "cuda/row_reduce.cuh"

namespace glimpse::cuda::detail {
namespace {

// Output j of an [outer, R, inner] reduction reads x[first_element(j) + r * inner] for r < R.
__device__ inline int64_t first_element(int64_t j, int64_t R, int64_t inner) {
  return (j / inner) * R * inner + j % inner;
}

template <int kThreads>
__global__ void group_sum_kernel(const float* x, float* y, int64_t outputs, int64_t R) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < outputs; row += Group::row_stride()) {
    const float* xr = x + row * R;
    float acc = 0.0f;
    for (int64_t r = Group::lane(); r < R; r += kThreads) acc += xr[r];
    acc = Group::reduce(acc, SumOp{});
    if (Group::lane() == 0) y[row] = acc;
  }
}

// Sum over r of x[o, r, i], one column per (o, i) for column_sums.
struct MiddleAxisTerms {
  static constexpr int kSums = 1;
  const float* x;
  int64_t R;
  int64_t inner;
  __device__ void operator()(int64_t r, int64_t j, float (&terms)[1]) const {
    terms[0] = x[first_element(j, R, inner) + r * inner];
  }
};

struct ProdOp {
  __device__ float operator()(float a, float b) const { return a * b; }
};

// Products with a row group per output (few outputs, or contiguous reduced elements).
template <int kThreads>
__global__ void group_prod_kernel(const float* x, float* y, int64_t outputs, int64_t R,
                                  int64_t inner) {
  using Group = RowGroup<kThreads>;
  for (int64_t j = Group::first_row(); j < outputs; j += Group::row_stride()) {
    const float* xj = x + first_element(j, R, inner);
    float acc = 1.0f;
    for (int64_t r = Group::lane(); r < R; r += kThreads) acc *= xj[r * inner];
    acc = Group::reduce(acc, ProdOp{});
    if (Group::lane() == 0) y[j] = acc;
  }
}

// One thread per output, multiplying in the order r = 0 .. R-1 as the CPU does.
struct ThreadProd {
  const float* x;
  float* y;
  int64_t R;
  int64_t inner;
  __device__ void operator()(int64_t j) const {
    const float* xj = x + first_element(j, R, inner);
    float acc = 1.0f;
    for (int64_t r = 0; r < R; ++r) acc *= xj[r * inner];
    y[j] = acc;
  }
};

// One thread per output column: an ascending sweep writes the exclusive prefix products, a
// descending one multiplies in gy times the exclusive suffix products (no division, so zeros are
// exact). Neighbouring threads take neighbouring columns, so reads coalesce when inner > 1; a
// single very long column is serial, which is acceptable for a reduction this rare.
struct ThreadProdBackward {
  const float* x;
  const float* gy;
  float* gx;
  int64_t R;
  int64_t inner;
  __device__ void operator()(int64_t j) const {
    const int64_t first = first_element(j, R, inner);
    float running = 1.0f;
    for (int64_t r = 0; r < R; ++r) {
      gx[first + r * inner] = running;
      running *= x[first + r * inner];
    }
    running = gy[j];
    for (int64_t r = R - 1; r >= 0; --r) {
      gx[first + r * inner] *= running;
      running *= x[first + r * inner];
    }
  }
};

template <int kThreads>
__global__ void group_max_kernel(const float* x, float* y, int32_t* argmax, int64_t outputs,
                                 int64_t R, int64_t inner) {
  using Group = RowGroup<kThreads>;
  for (int64_t j = Group::first_row(); j < outputs; j += Group::row_stride()) {
    const float* xj = x + first_element(j, R, inner);
    ValueIndex best{-INFINITY, -1};
    for (int64_t r = Group::lane(); r < R; r += kThreads) {
      const ValueIndex candidate{xj[r * inner], static_cast<int32_t>(r)};
      if (MaxOrder::ranks_before(candidate, best)) best = candidate;
    }
    best = Group::reduce(best, BestOp<MaxOrder>{});
    if (Group::lane() == 0) {
      y[j] = best.value;
      argmax[j] = best.index;
    }
  }
}

// One thread per output, scanning R in order.
struct ThreadMax {
  const float* x;
  float* y;
  int32_t* argmax;
  int64_t R;
  int64_t inner;
  __device__ void operator()(int64_t j) const {
    const float* xj = x + first_element(j, R, inner);
    ValueIndex best{-INFINITY, -1};
    for (int64_t r = 0; r < R; ++r) {
      const ValueIndex candidate{xj[r * inner], static_cast<int32_t>(r)};
      if (MaxOrder::ranks_before(candidate, best)) best = candidate;
    }
    y[j] = best.value;
    argmax[j] = best.index;
  }
};

struct MaxBackward {
  const float* gy;
  const int32_t* argmax;
  float* gx;
  int64_t R;
  int64_t inner;
  __device__ void operator()(int64_t i) const {
    const int64_t o = i / (R * inner);
    const int64_t r = (i / inner) % R;
    const int64_t j = o * inner + i % inner;
    gx[i] = argmax[j] == r ? gy[j] : 0.0f;
  }
};

template <int kThreads>
__global__ void argmax_rows_kernel(const float* x, int32_t* idx, int64_t rows, int64_t cols) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const float* xr = x + row * cols;
    ValueIndex best{-INFINITY, -1};
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      const ValueIndex candidate{xr[c], static_cast<int32_t>(c)};
      if (MaxOrder::ranks_before(candidate, best)) best = candidate;
    }
    best = Group::reduce(best, BestOp<MaxOrder>{});
    if (Group::lane() == 0) idx[row] = best.index < 0 ? 0 : best.index;  // cols == 0: 0, as on CPU
  }
}

// Top-k as k rounds of argmax: round j takes the best element that ranks strictly after round
// j-1's winner in TopkOrder (value descending, index ascending, NaN last). No per-row state beyond
// the previous winner is needed, so k is unbounded and no shared memory scales with it.
// Only min(k, cols) entries per row are written (k <= cols is the ops layer's check).
template <int kThreads>
__global__ void topk_rows_kernel(const float* x, float* values, int32_t* idx, int64_t rows,
                                 int64_t cols, int64_t k) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const float* xr = x + row * cols;
    ValueIndex previous{-INFINITY, -1};
    const int64_t kept = k < cols ? k : cols;
    for (int64_t j = 0; j < kept; ++j) {
      ValueIndex best{-INFINITY, -1};
      for (int64_t c = Group::lane(); c < cols; c += kThreads) {
        const ValueIndex candidate{xr[c], static_cast<int32_t>(c)};
        const bool eligible = j == 0 || TopkOrder::ranks_before(previous, candidate);
        if (eligible && TopkOrder::ranks_before(candidate, best)) best = candidate;
      }
      best = Group::reduce(best, BestOp<TopkOrder>{});
      if (Group::lane() == 0) {
        values[row * k + j] = best.value;
        idx[row * k + j] = best.index;
      }
      previous = best;
    }
  }
}

// Below this many outputs, a row group per output beats one thread per output.
constexpr int64_t kFewOutputs = 4096;

}  // namespace

void reduce_sum(const float* x, float* y, int64_t outer, int64_t R, int64_t inner) {
  const int64_t outputs = outer * inner;
  if (outputs <= 0) return;
  if (inner > 1) {
    column_sums("reduce_sum", MiddleAxisTerms{x, R, inner}, R, outputs, ColumnOutputs<1>{{y}});
    return;
  }
  const RowLaunch launch = row_launch(outputs, R);
  if (launch.warp_per_row) {
    group_sum_kernel<kWarpSize><<<launch.blocks, launch.threads, 0, stream()>>>(x, y, outputs, R);
  } else {
    group_sum_kernel<kRowBlockThreads>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, y, outputs, R);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("reduce_sum");
}

void reduce_prod(const float* x, float* y, int64_t outer, int64_t R, int64_t inner) {
  const int64_t outputs = outer * inner;
  if (outputs <= 0) return;
  if (inner > 1 && outputs >= kFewOutputs) {
    for_each_index("reduce_prod", outputs, ThreadProd{x, y, R, inner});
    return;
  }
  const RowLaunch launch = row_launch(outputs, R);
  if (launch.warp_per_row) {
    group_prod_kernel<kWarpSize>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, y, outputs, R, inner);
  } else {
    group_prod_kernel<kRowBlockThreads>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, y, outputs, R, inner);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("reduce_prod");
}

void reduce_prod_backward(const float* x, const float* gy, float* gx, int64_t outer, int64_t R,
                          int64_t inner) {
  if (R <= 0) return;
  for_each_index("reduce_prod_backward", outer * inner, ThreadProdBackward{x, gy, gx, R, inner});
}

void reduce_max(const float* x, float* y, int32_t* argmax, int64_t outer, int64_t R,
                int64_t inner) {
  const int64_t outputs = outer * inner;
  if (outputs <= 0) return;
  if (R == 0) {  // the ops layer rejects this; keep the outputs defined anyway, as the CPU does
    fill(y, outputs, -INFINITY);
    fill_i32(argmax, outputs, 0);
    return;
  }
  if (inner > 1 && outputs >= kFewOutputs) {
    for_each_index("reduce_max", outputs, ThreadMax{x, y, argmax, R, inner});
    return;
  }
  const RowLaunch launch = row_launch(outputs, R);
  if (launch.warp_per_row) {
    group_max_kernel<kWarpSize>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, y, argmax, outputs, R, inner);
  } else {
    group_max_kernel<kRowBlockThreads>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, y, argmax, outputs, R, inner);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("reduce_max");
}

void reduce_max_backward(const float* gy, const int32_t* argmax, float* gx, int64_t outer,
                         int64_t R, int64_t inner) {
  for_each_index("reduce_max_backward", outer * R * inner, MaxBackward{gy, argmax, gx, R, inner});
}

void argmax_rows(const float* x, int32_t* idx, int64_t rows, int64_t cols) {
  if (rows <= 0) return;
  const RowLaunch launch = row_launch(rows, cols);
  if (launch.warp_per_row) {
    argmax_rows_kernel<kWarpSize>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, idx, rows, cols);
  } else {
    argmax_rows_kernel<kRowBlockThreads>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, idx, rows, cols);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("argmax_rows");
}

void topk_rows(const float* x, float* values, int32_t* idx, int64_t rows, int64_t cols, int64_t k) {
  if (rows <= 0 || k <= 0) return;
  const RowLaunch launch = row_launch(rows, cols);
  if (launch.warp_per_row) {
    topk_rows_kernel<kWarpSize>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, values, idx, rows, cols, k);
  } else {
    topk_rows_kernel<kRowBlockThreads>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, values, idx, rows, cols, k);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("topk_rows");
}

}  // namespace glimpse::cuda::detail
