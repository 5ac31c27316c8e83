// Row-wise softmax and log-softmax (+ backward) and the fused log-softmax + NLL cross-entropy
// (+ backward). A row group (warp or block, see row_reduce.cuh) handles each row.
//
// Numerically stable: every exponent is taken of x - max(row), so it is <= 0 and cannot overflow,
// and log-softmax is (x - max) - log(sum exp(x - max)) rather than log(softmax), which would
// underflow to log(0) for very negative logits. The parentheses matter: x - (max + log(sum))
// rounds max + log(sum) to float's spacing at max (2^-10 near 1e4), while x - max is exact.
#include <cmath>

#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"
#include "cuda/row_reduce.cuh"

namespace glimpse::cuda::detail {
namespace {

// max(row) and sum(exp(row - max)), known to every thread of the group.
template <int kThreads>
__device__ void row_max_and_exp_sum(const float* xr, int64_t cols, float& max_out, float& sum_out) {
  using Group = RowGroup<kThreads>;
  float local_max = -INFINITY;
  for (int64_t c = Group::lane(); c < cols; c += kThreads) local_max = fmaxf(local_max, xr[c]);
  const float row_max = Group::reduce(local_max, MaxOp{});
  float local_sum = 0.0f;
  for (int64_t c = Group::lane(); c < cols; c += kThreads) local_sum += expf(xr[c] - row_max);
  max_out = row_max;
  sum_out = Group::reduce(local_sum, SumOp{});
}

template <int kThreads>
__global__ void softmax_kernel(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const float* xr = x + row * cols;
    float* yr = y + row * cols;
    float row_max, exp_sum;
    row_max_and_exp_sum<kThreads>(xr, cols, row_max, exp_sum);
    if (log) {
      const float log_sum = logf(exp_sum);
      for (int64_t c = Group::lane(); c < cols; c += kThreads) yr[c] = (xr[c] - row_max) - log_sum;
    } else {
      const float inverse_sum = 1.0f / exp_sum;
      for (int64_t c = Group::lane(); c < cols; c += kThreads) {
        yr[c] = expf(xr[c] - row_max) * inverse_sum;
      }
    }
  }
}

// softmax:     gx = y * (gy - sum(gy * y))
// log-softmax: gx = gy - exp(y) * sum(gy)
template <int kThreads>
__global__ void softmax_backward_kernel(const float* y, const float* gy, float* gx, int64_t rows,
                                        int64_t cols, bool log) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const float* yr = y + row * cols;
    const float* gyr = gy + row * cols;
    float* gxr = gx + row * cols;
    float local = 0.0f;
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      local += log ? gyr[c] : gyr[c] * yr[c];
    }
    const float total = Group::reduce(local, SumOp{});
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      gxr[c] = log ? gyr[c] - expf(yr[c]) * total : yr[c] * (gyr[c] - total);
    }
  }
}

// loss = log(sum exp(x)) - x[target] = log(exp_sum) - (x[target] - max).
template <int kThreads>
__global__ void cross_entropy_kernel(const float* logits, const int32_t* targets, float* loss,
                                     float* valid, int64_t rows, int64_t cols,
                                     int32_t ignore_index) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const int32_t target = targets[row];
    if (target == ignore_index) {  // the same for the whole group: no divergence at the barriers
      if (Group::lane() == 0) {
        loss[row] = 0.0f;
        valid[row] = 0.0f;
      }
      continue;
    }
    const float* xr = logits + row * cols;
    float row_max, exp_sum;
    row_max_and_exp_sum<kThreads>(xr, cols, row_max, exp_sum);
    if (Group::lane() == 0) {
      loss[row] = logf(exp_sum) - (xr[target] - row_max);
      valid[row] = 1.0f;
    }
  }
}

template <int kThreads>
__global__ void cross_entropy_backward_kernel(const float* logits, const int32_t* targets,
                                              const float* gloss, float* glogits, int64_t rows,
                                              int64_t cols, int32_t ignore_index) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const int32_t target = targets[row];
    float* gr = glogits + row * cols;
    if (target == ignore_index) {
      for (int64_t c = Group::lane(); c < cols; c += kThreads) gr[c] = 0.0f;
      continue;
    }
    const float* xr = logits + row * cols;
    float row_max, exp_sum;
    row_max_and_exp_sum<kThreads>(xr, cols, row_max, exp_sum);
    // gloss * softmax, minus gloss at the target
    const float g = gloss[row];
    const float scale = g / exp_sum;
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      const float scaled = expf(xr[c] - row_max) * scale;
      gr[c] = c == target ? scaled - g : scaled;
    }
  }
}

}  // namespace

void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  if (rows <= 0 || cols <= 0) return;
  const RowLaunch launch = row_launch(rows, cols);
  if (launch.warp_per_row) {
    softmax_kernel<kWarpSize>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, y, rows, cols, log);
  } else {
    softmax_kernel<kRowBlockThreads>
        <<<launch.blocks, launch.threads, 0, stream()>>>(x, y, rows, cols, log);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("softmax");
}

void softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols,
                      bool log) {
  if (rows <= 0 || cols <= 0) return;
  const RowLaunch launch = row_launch(rows, cols);
  if (launch.warp_per_row) {
    softmax_backward_kernel<kWarpSize>
        <<<launch.blocks, launch.threads, 0, stream()>>>(y, gy, gx, rows, cols, log);
  } else {
    softmax_backward_kernel<kRowBlockThreads>
        <<<launch.blocks, launch.threads, 0, stream()>>>(y, gy, gx, rows, cols, log);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("softmax_backward");
}

void cross_entropy(const float* logits, const int32_t* targets, float* loss, float* valid,
                   int64_t rows, int64_t cols, int32_t ignore_index) {
  if (rows <= 0) return;
  const RowLaunch launch = row_launch(rows, cols);
  if (launch.warp_per_row) {
    cross_entropy_kernel<kWarpSize><<<launch.blocks, launch.threads, 0, stream()>>>(
        logits, targets, loss, valid, rows, cols, ignore_index);
  } else {
    cross_entropy_kernel<kRowBlockThreads><<<launch.blocks, launch.threads, 0, stream()>>>(
        logits, targets, loss, valid, rows, cols, ignore_index);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("cross_entropy");
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* gloss,
                            float* glogits, int64_t rows, int64_t cols, int32_t ignore_index) {
  if (rows <= 0 || cols <= 0) return;
  const RowLaunch launch = row_launch(rows, cols);
  if (launch.warp_per_row) {
    cross_entropy_backward_kernel<kWarpSize><<<launch.blocks, launch.threads, 0, stream()>>>(
        logits, targets, gloss, glogits, rows, cols, ignore_index);
  } else {
    cross_entropy_backward_kernel<kRowBlockThreads><<<launch.blocks, launch.threads, 0, stream()>>>(
        logits, targets, gloss, glogits, rows, cols, ignore_index);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("cross_entropy_backward");
}

}  // namespace glimpse::cuda::detail
