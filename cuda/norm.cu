// Layer norm (+ backward) and batch norm (statistics, forward, backward).
//
// Per-row work (layer norm's statistics and gx) runs in row groups (row_reduce.cuh). Sums over
// rows per column (batch statistics, ggamma, gbeta) use column_sums: a fixed two-pass split and
// no atomics, so parameter gradients are bitwise reproducible.
#include <cmath>

#include "cuda/allocator.h"
#include "cuda/column_sums.cuh"
#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"
#include "cuda/row_reduce.cuh"

namespace glimpse::cuda::detail {
namespace {

// mean and variance by two passes over the row (the row stays in cache): more accurate than
// E[x^2] - mean^2, which cancels badly when |mean| >> std. gamma and beta may be null (1 and 0).
template <int kThreads>
__global__ void layer_norm_kernel(const float* x, const float* gamma, const float* beta, float* y,
                                  float* mean_out, float* rstd_out, int64_t rows, int64_t cols,
                                  float eps) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const float* xr = x + row * cols;
    float* yr = y + row * cols;
    float local = 0.0f;
    for (int64_t c = Group::lane(); c < cols; c += kThreads) local += xr[c];
    const float mean = Group::reduce(local, SumOp{}) / static_cast<float>(cols);
    local = 0.0f;
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      const float d = xr[c] - mean;
      local += d * d;
    }
    const float var = Group::reduce(local, SumOp{}) / static_cast<float>(cols);
    const float rstd = 1.0f / sqrtf(var + eps);
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      const float normalized = (xr[c] - mean) * rstd;
      yr[c] = normalized * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
    }
    if (Group::lane() == 0) {
      mean_out[row] = mean;
      rstd_out[row] = rstd;
    }
  }
}

// With g = gy * gamma and xhat = (x - mean) * rstd:
//   gx = rstd * (g - mean(g) - xhat * mean(g * xhat))
template <int kThreads>
__global__ void layer_norm_gx_kernel(const float* x, const float* gamma, const float* mean,
                                     const float* rstd, const float* gy, float* gx, int64_t rows,
                                     int64_t cols) {
  using Group = RowGroup<kThreads>;
  for (int64_t row = Group::first_row(); row < rows; row += Group::row_stride()) {
    const float* xr = x + row * cols;
    const float* gyr = gy + row * cols;
    float* gxr = gx + row * cols;
    const float row_mean = mean[row];
    const float row_rstd = rstd[row];
    float local_g = 0.0f;
    float local_g_xhat = 0.0f;
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      const float g = gyr[c] * (gamma ? gamma[c] : 1.0f);
      local_g += g;
      local_g_xhat += g * (xr[c] - row_mean) * row_rstd;
    }
    const float mean_g = Group::reduce(local_g, SumOp{}) / static_cast<float>(cols);
    const float mean_g_xhat = Group::reduce(local_g_xhat, SumOp{}) / static_cast<float>(cols);
    for (int64_t c = Group::lane(); c < cols; c += kThreads) {
      const float xhat = (xr[c] - row_mean) * row_rstd;
      const float g = gyr[c] * (gamma ? gamma[c] : 1.0f);
      gxr[c] = row_rstd * (g - mean_g - xhat * mean_g_xhat);
    }
  }
}

// ggamma = sum over rows of gy * xhat, gbeta = sum over rows of gy (xhat from per-row stats).
struct LayerNormParamTerms {
  static constexpr int kSums = 2;
  const float* x;
  const float* mean;
  const float* rstd;
  const float* gy;
  int64_t cols;
  __device__ void operator()(int64_t row, int64_t col, float (&terms)[2]) const {
    const float g = gy[row * cols + col];
    terms[0] = g * (x[row * cols + col] - mean[row]) * rstd[row];
    terms[1] = g;
  }
};

struct ColumnValues {
  static constexpr int kSums = 1;
  const float* x;
  int64_t C;
  __device__ void operator()(int64_t row, int64_t col, float (&terms)[1]) const {
    terms[0] = x[row * C + col];
  }
};

struct SquaredDeviations {
  static constexpr int kSums = 1;
  const float* x;
  const float* mean;
  int64_t C;
  __device__ void operator()(int64_t row, int64_t col, float (&terms)[1]) const {
    const float d = x[row * C + col] - mean[col];
    terms[0] = d * d;
  }
};

struct BatchNormForward {
  const float* x;
  const float* mean;
  const float* var;
  const float* gamma;  // may be null (= 1)
  const float* beta;   // may be null (= 0)
  float* y;
  int64_t C;
  float eps;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % C;
    const float scale = (gamma ? gamma[c] : 1.0f) / sqrtf(var[c] + eps);
    y[i] = (x[i] - mean[c]) * scale + (beta ? beta[c] : 0.0f);
  }
};

// sums[c] = sum over rows of gy, sums[C + c] = sum over rows of gy * xhat.
struct BatchNormGradTerms {
  static constexpr int kSums = 2;
  const float* x;
  const float* mean;
  const float* var;
  const float* gy;
  int64_t C;
  float eps;
  __device__ void operator()(int64_t row, int64_t col, float (&terms)[2]) const {
    const float g = gy[row * C + col];
    const float rstd = 1.0f / sqrtf(var[col] + eps);
    terms[0] = g;
    terms[1] = g * (x[row * C + col] - mean[col]) * rstd;
  }
};

// training:  gx = gamma * rstd * (gy - sum(gy) / N - xhat * sum(gy * xhat) / N)
// inference: gx = gamma * rstd * gy            (mean and var are constants)
struct BatchNormInputGrad {
  const float* x;
  const float* mean;
  const float* var;
  const float* gamma;  // may be null (= 1)
  const float* gy;
  const float* sum_gy;
  const float* sum_gy_xhat;
  float* gx;
  int64_t N;
  int64_t C;
  float eps;
  bool training;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % C;
    const float rstd = 1.0f / sqrtf(var[c] + eps);
    const float scale = (gamma ? gamma[c] : 1.0f) * rstd;
    if (!training) {
      gx[i] = scale * gy[i];
      return;
    }
    const float xhat = (x[i] - mean[c]) * rstd;
    const float count = static_cast<float>(N);
    gx[i] = scale * (gy[i] - sum_gy[c] / count - xhat * sum_gy_xhat[c] / count);
  }
};

}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                float* rstd, int64_t rows, int64_t cols, float eps) {
  if (rows <= 0) return;
  const RowLaunch launch = row_launch(rows, cols);
  if (launch.warp_per_row) {
    layer_norm_kernel<kWarpSize><<<launch.blocks, launch.threads, 0, stream()>>>(
        x, gamma, beta, y, mean, rstd, rows, cols, eps);
  } else {
    layer_norm_kernel<kRowBlockThreads><<<launch.blocks, launch.threads, 0, stream()>>>(
        x, gamma, beta, y, mean, rstd, rows, cols, eps);
  }
  GLIMPSE_CUDA_CHECK_LAUNCH("layer_norm");
}

void layer_norm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* ggamma, float* gbeta, int64_t rows,
                         int64_t cols) {
  if (cols <= 0) return;
  if (rows > 0) {
    const RowLaunch launch = row_launch(rows, cols);
    if (launch.warp_per_row) {
      layer_norm_gx_kernel<kWarpSize><<<launch.blocks, launch.threads, 0, stream()>>>(
          x, gamma, mean, rstd, gy, gx, rows, cols);
    } else {
      layer_norm_gx_kernel<kRowBlockThreads><<<launch.blocks, launch.threads, 0, stream()>>>(
          x, gamma, mean, rstd, gy, gx, rows, cols);
    }
    GLIMPSE_CUDA_CHECK_LAUNCH("layer_norm_backward");
  }
  if (ggamma == nullptr && gbeta == nullptr) return;
  column_sums("layer_norm_backward", LayerNormParamTerms{x, mean, rstd, gy, cols}, rows, cols,
              ColumnOutputs<2>{{ggamma, gbeta}});
}

void batch_norm_stats(const float* x, float* mean, float* var, int64_t N, int64_t C) {
  const float count = static_cast<float>(N);
  column_sums("batch_norm_stats", ColumnValues{x, C}, N, C, ColumnOutputs<1>{{mean}}, count);
  column_sums("batch_norm_stats", SquaredDeviations{x, mean, C}, N, C, ColumnOutputs<1>{{var}},
              count);
}

void batch_norm_forward(const float* x, const float* mean, const float* var, const float* gamma,
                        const float* beta, float* y, int64_t N, int64_t C, float eps) {
  if (C <= 0) return;
  for_each_index("batch_norm_forward", N * C,
                 BatchNormForward{x, mean, var, gamma, beta, y, C, eps});
}

void batch_norm_backward(const float* x, const float* mean, const float* var, const float* gamma,
                         const float* gy, float* gx, float* ggamma, float* gbeta, int64_t N,
                         int64_t C, float eps, bool training) {
  if (C <= 0) return;
  // Both sums are needed for gx in training; in inference only for the parameter gradients.
  ScratchBuffer<float> sums(2 * C);
  float* sum_gy = sums.data();
  float* sum_gy_xhat = sums.data() + C;
  if (training || ggamma != nullptr || gbeta != nullptr) {
    column_sums("batch_norm_backward", BatchNormGradTerms{x, mean, var, gy, C, eps}, N, C,
                ColumnOutputs<2>{{sum_gy, sum_gy_xhat}});
  }
  for_each_index(
      "batch_norm_backward", N * C,
      BatchNormInputGrad{x, mean, var, gamma, gy, sum_gy, sum_gy_xhat, gx, N, C, eps, training});
  const size_t bytes = static_cast<size_t>(C) * sizeof(float);
  if (ggamma != nullptr) {
    GLIMPSE_CUDA_CHECK(
        cudaMemcpyAsync(ggamma, sum_gy_xhat, bytes, cudaMemcpyDeviceToDevice, stream()));
  }
  if (gbeta != nullptr) {
    GLIMPSE_CUDA_CHECK(cudaMemcpyAsync(gbeta, sum_gy, bytes, cudaMemcpyDeviceToDevice, stream()));
  }
}

}  // namespace glimpse::cuda::detail
