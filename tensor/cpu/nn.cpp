// CPU kernels for the fused neural-network ops: layer norm, batch norm, one GRU step (Keras gate
// order z, r, h; reset gate after or before the recurrent matmul) and the embedding gather /
// scatter-add.
#include "tensor/cpu/eigen.h"
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/cpu/kernels_impl.h"

namespace glimpse::cpu::detail {
namespace {

template <class T>
using ArrayView = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstArrayView = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// gamma and beta may be null (scale = 1, shift = 0).
template <class T>
void layer_norm(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t rows,
                int64_t cols, T eps) {
  parallel_for(rows, cols, [&](int64_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T row_mean = lane_sum(xr, cols) / T(cols);
    // Two passes (mean, then squared deviations) avoid E[x^2] - E[x]^2's cancellation.
    const T var = (ConstArrayView<T>(xr, cols) - row_mean).square().sum() / T(cols);
    const T row_rstd = T(1) / std::sqrt(var + eps);
    mean[r] = row_mean;
    rstd[r] = row_rstd;
    for (int64_t c = 0; c < cols; ++c) {
      const T normalized = (xr[c] - row_mean) * row_rstd;
      yr[c] = normalized * (gamma ? gamma[c] : T(1)) + (beta ? beta[c] : T(0));
    }
  });
}

// With xhat = (x - mean) * rstd and g = gy * gamma:
// gx = rstd * (g - mean(g) - xhat * mean(g * xhat)); ggamma = sum_rows gy * xhat; gbeta = sum_rows gy.
template <class T>
void layer_norm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* gy,
                         T* gx, T* ggamma, T* gbeta, int64_t rows, int64_t cols) {
  parallel_for(rows, cols, [&](int64_t r) {
    const T* xr = x + r * cols;
    const T* gyr = gy + r * cols;
    T* gxr = gx + r * cols;
    T sum_g = 0;
    T sum_g_xhat = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const T g = gyr[c] * (gamma ? gamma[c] : T(1));
      sum_g += g;
      sum_g_xhat += g * (xr[c] - mean[r]) * rstd[r];
    }
    const T mean_g = sum_g / T(cols);
    const T mean_g_xhat = sum_g_xhat / T(cols);
    for (int64_t c = 0; c < cols; ++c) {
      const T g = gyr[c] * (gamma ? gamma[c] : T(1));
      const T xhat = (xr[c] - mean[r]) * rstd[r];
      gxr[c] = rstd[r] * (g - mean_g - xhat * mean_g_xhat);
    }
  });
  if (ggamma == nullptr && gbeta == nullptr) return;
  // sums[0, c] = sum gy * xhat, sums[1, c] = sum gy
  std::vector<T> sums(2 * cols);
  column_sums<T>(rows, cols, 2, sums.data(),
                 [&](int64_t r_begin, int64_t r_end, int64_t c_begin, int64_t c_end, T* acc) {
                   for (int64_t r = r_begin; r < r_end; ++r) {
                     const T* xr = x + r * cols;
                     const T* gyr = gy + r * cols;
                     for (int64_t c = c_begin; c < c_end; ++c) {
                       acc[c] += gyr[c] * (xr[c] - mean[r]) * rstd[r];
                       acc[cols + c] += gyr[c];
                     }
                   }
                 });
  if (ggamma) std::memcpy(ggamma, sums.data(), cols * sizeof(T));
  if (gbeta) std::memcpy(gbeta, sums.data() + cols, cols * sizeof(T));
}

template <class T>
void batch_norm_stats(const T* x, T* mean, T* var, int64_t N, int64_t C) {
  column_sums<T>(N, C, 1, mean,
                 [&](int64_t r_begin, int64_t r_end, int64_t c_begin, int64_t c_end, T* acc) {
                   for (int64_t r = r_begin; r < r_end; ++r) {
                     for (int64_t c = c_begin; c < c_end; ++c) acc[c] += x[r * C + c];
                   }
                 });
  for (int64_t c = 0; c < C; ++c) mean[c] /= T(N);
  // Second pass over squared deviations from the mean (no E[x^2] - E[x]^2 cancellation).
  column_sums<T>(N, C, 1, var,
                 [&](int64_t r_begin, int64_t r_end, int64_t c_begin, int64_t c_end, T* acc) {
                   for (int64_t r = r_begin; r < r_end; ++r) {
                     for (int64_t c = c_begin; c < c_end; ++c) {
                       const T d = x[r * C + c] - mean[c];
                       acc[c] += d * d;
                     }
                   }
                 });
  for (int64_t c = 0; c < C; ++c) var[c] /= T(N);
}

// beta may be null as well as gamma (Keras center=False).
template <class T>
void batch_norm_forward(const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                        T* y, int64_t N, int64_t C, T eps) {
  std::vector<T> scale(C);
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = (gamma ? gamma[c] : T(1)) / std::sqrt(var[c] + eps);
  }
  parallel_for(N, C, [&](int64_t r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) {
      yr[c] = (xr[c] - mean[c]) * scale[c] + (beta ? beta[c] : T(0));
    }
  });
}

// With xhat = (x - mean) * rstd: ggamma = sum gy * xhat, gbeta = sum gy, and
//   inference: gx = gamma * rstd * gy
//   training:  gx = gamma * rstd * (gy - sum(gy) / N - xhat * sum(gy * xhat) / N)
// where the extra terms are the derivatives through the batch mean and variance.
template <class T>
void batch_norm_backward(const T* x, const T* mean, const T* var, const T* gamma, const T* gy,
                         T* gx, T* ggamma, T* gbeta, int64_t N, int64_t C, T eps, bool training) {
  std::vector<T> rstd(C);
  for (int64_t c = 0; c < C; ++c) rstd[c] = T(1) / std::sqrt(var[c] + eps);
  // sums[0, c] = sum gy * xhat, sums[1, c] = sum gy
  std::vector<T> sums(2 * C);
  column_sums<T>(N, C, 2, sums.data(),
                 [&](int64_t r_begin, int64_t r_end, int64_t c_begin, int64_t c_end, T* acc) {
                   for (int64_t r = r_begin; r < r_end; ++r) {
                     const T* xr = x + r * C;
                     const T* gyr = gy + r * C;
                     for (int64_t c = c_begin; c < c_end; ++c) {
                       acc[c] += gyr[c] * (xr[c] - mean[c]) * rstd[c];
                       acc[C + c] += gyr[c];
                     }
                   }
                 });
  const T* sum_gy_xhat = sums.data();
  const T* sum_gy = sums.data() + C;
  if (ggamma) std::memcpy(ggamma, sum_gy_xhat, C * sizeof(T));
  if (gbeta) std::memcpy(gbeta, sum_gy, C * sizeof(T));

  std::vector<T> scale(C);  // gamma * rstd
  for (int64_t c = 0; c < C; ++c) scale[c] = (gamma ? gamma[c] : T(1)) * rstd[c];
  parallel_for(N, C, [&](int64_t r) {
    const T* xr = x + r * C;
    const T* gyr = gy + r * C;
    T* gxr = gx + r * C;
    if (!training) {
      for (int64_t c = 0; c < C; ++c) gxr[c] = scale[c] * gyr[c];
      return;
    }
    for (int64_t c = 0; c < C; ++c) {
      const T xhat = (xr[c] - mean[c]) * rstd[c];
      gxr[c] = scale[c] * (gyr[c] - sum_gy[c] / T(N) - xhat * sum_gy_xhat[c] / T(N));
    }
  });
}

// z = sigmoid(xp_z + hp_z); r = sigmoid(xp_r + hp_r); c = tanh(xp_h + r * hp_h);
// h_new = z * h_prev + (1 - z) * c. The reset gate multiplies the recurrent projection
// (reset_after), so hp already holds h_prev R + b_rec for all three gates.
template <class T>
void gru_step(const T* xp, const T* hp, const T* h_prev, T* h_new, T* gates, int64_t B,
              int64_t U) {
  parallel_for(B, 3 * U, [&](int64_t b) {
    const T* xrow = xp + b * 3 * U;
    const T* hrow = hp + b * 3 * U;
    T* grow = gates + b * 3 * U;
    ConstArrayView<T> xp_z(xrow, U), xp_r(xrow + U, U), xp_h(xrow + 2 * U, U);
    ConstArrayView<T> hp_z(hrow, U), hp_r(hrow + U, U), hp_h(hrow + 2 * U, U);
    ArrayView<T> z(grow, U), r(grow + U, U), c(grow + 2 * U, U);
    z = (T(1) + (-(xp_z + hp_z)).exp()).inverse();
    r = (T(1) + (-(xp_r + hp_r)).exp()).inverse();
    c = (xp_h + r * hp_h).tanh();
    ArrayView<T>(h_new + b * U, U) = z * ConstArrayView<T>(h_prev + b * U, U) + (T(1) - z) * c;
  });
}

template <class T>
void gru_step_backward(const T* gh, const T* gates, const T* hp, const T* h_prev, T* dxp, T* dhp,
                       T* dh_prev, int64_t B, int64_t U) {
  parallel_for(B, 3 * U, [&](int64_t b) {
    const T* z = gates + b * 3 * U;
    const T* r = z + U;
    const T* c = z + 2 * U;
    const T* hp_h = hp + b * 3 * U + 2 * U;
    const T* g = gh + b * U;
    const T* h = h_prev + b * U;
    T* dx = dxp + b * 3 * U;
    T* dh = dhp + b * 3 * U;
    for (int64_t u = 0; u < U; ++u) {
      const T d_pre_c = g[u] * (T(1) - z[u]) * (T(1) - c[u] * c[u]);
      const T d_pre_r = d_pre_c * hp_h[u] * r[u] * (T(1) - r[u]);
      const T d_pre_z = g[u] * (h[u] - c[u]) * z[u] * (T(1) - z[u]);
      dx[u] = d_pre_z;
      dh[u] = d_pre_z;
      dx[U + u] = d_pre_r;
      dh[U + u] = d_pre_r;
      dx[2 * U + u] = d_pre_c;
      dh[2 * U + u] = d_pre_c * r[u];
      dh_prev[b * U + u] = g[u] * z[u];
    }
  });
}

// reset_after=False, part 1: z = sigmoid(xp_z + hp_z), r = sigmoid(xp_r + hp_r), rh = r * h_prev
// (the caller then multiplies rh by R_h into hp's h block).
template <class T>
void gru_gates_reset_before(const T* xp, const T* hp, const T* h_prev, T* gates, T* rh, int64_t B,
                            int64_t U) {
  parallel_for(B, 3 * U, [&](int64_t b) {
    const T* xrow = xp + b * 3 * U;
    const T* hrow = hp + b * 3 * U;
    T* grow = gates + b * 3 * U;
    ConstArrayView<T> xp_z(xrow, U), xp_r(xrow + U, U), hp_z(hrow, U), hp_r(hrow + U, U);
    ArrayView<T> z(grow, U), r(grow + U, U);
    z = (T(1) + (-(xp_z + hp_z)).exp()).inverse();
    r = (T(1) + (-(xp_r + hp_r)).exp()).inverse();
    ArrayView<T>(rh + b * U, U) = r * ConstArrayView<T>(h_prev + b * U, U);
  });
}

// reset_after=False, part 2: c = tanh(xp_h + hp_h) with hp_h = (r * h_prev) R_h already there.
template <class T>
void gru_output_reset_before(const T* xp, const T* hp, const T* h_prev, T* gates, T* h_new,
                             int64_t B, int64_t U) {
  parallel_for(B, 3 * U, [&](int64_t b) {
    T* grow = gates + b * 3 * U;
    ConstArrayView<T> z(grow, U);
    ArrayView<T> c(grow + 2 * U, U);
    c = (ConstArrayView<T>(xp + b * 3 * U + 2 * U, U) + ConstArrayView<T>(hp + b * 3 * U + 2 * U, U))
            .tanh();
    ArrayView<T>(h_new + b * U, U) = z * ConstArrayView<T>(h_prev + b * U, U) + (T(1) - z) * c;
  });
}

template <class T>
void gru_output_reset_before_backward(const T* gh, const T* gates, const T* h_prev, T* dpre,
                                      T* dh_prev, int64_t B, int64_t U) {
  parallel_for(B, 3 * U, [&](int64_t b) {
    const T* z = gates + b * 3 * U;
    const T* c = z + 2 * U;
    const T* g = gh + b * U;
    const T* h = h_prev + b * U;
    T* d = dpre + b * 3 * U;
    for (int64_t u = 0; u < U; ++u) {
      d[u] = g[u] * (h[u] - c[u]) * z[u] * (T(1) - z[u]);
      d[2 * U + u] = g[u] * (T(1) - z[u]) * (T(1) - c[u] * c[u]);
      dh_prev[b * U + u] = g[u] * z[u];
    }
  });
}

// rh = r * h_prev: d(pre_r) = drh * h_prev * r (1 - r), and h_prev gets drh * r on top.
template <class T>
void gru_gates_reset_before_backward(const T* drh, const T* gates, const T* h_prev, T* dpre,
                                     T* dh_prev, int64_t B, int64_t U) {
  parallel_for(B, 3 * U, [&](int64_t b) {
    const T* r = gates + b * 3 * U + U;
    const T* g = drh + b * U;
    const T* h = h_prev + b * U;
    T* d = dpre + b * 3 * U + U;
    T* dh = dh_prev + b * U;
    for (int64_t u = 0; u < U; ++u) {
      d[u] = g[u] * h[u] * r[u] * (T(1) - r[u]);
      dh[u] += g[u] * r[u];
    }
  });
}

// ONNX Gather / NumPy take: a negative index counts from the end of the table.
inline int64_t wrap_row(int32_t index, int64_t n_rows) {
  return index < 0 ? static_cast<int64_t>(index) + n_rows : static_cast<int64_t>(index);
}

template <class T>
void gather_rows(const T* table, int64_t n_rows, const int32_t* idx, T* out, int64_t n_idx,
                 int64_t row_size) {
  parallel_for(n_idx, row_size, [&](int64_t i) {
    std::memcpy(out + i * row_size, table + wrap_row(idx[i], n_rows) * row_size,
                row_size * sizeof(T));
  });
}

// Repeated indices add into the same table row, so threads split the columns, never the indices:
// each table element is updated by one thread, in index order.
template <class T>
void scatter_add_rows(const T* gout, const int32_t* idx, T* gtable, int64_t n_rows,
                      int64_t n_idx, int64_t row_size) {
  constexpr int64_t kColumns = 128;
  const int64_t num_chunks = (row_size + kColumns - 1) / kColumns;
  parallel_for(num_chunks, n_idx * std::min(row_size, kColumns), [&](int64_t chunk) {
    const int64_t c_begin = chunk * kColumns;
    const int64_t c_end = std::min(row_size, c_begin + kColumns);
    for (int64_t i = 0; i < n_idx; ++i) {
      const T* src = gout + i * row_size;
      T* dst = gtable + wrap_row(idx[i], n_rows) * row_size;
      for (int64_t c = c_begin; c < c_end; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace

template <class T>
void add_nn_kernels(Kernels<T>& table) {
  table.layer_norm = layer_norm<T>;
  table.layer_norm_backward = layer_norm_backward<T>;
  table.batch_norm_stats = batch_norm_stats<T>;
  table.batch_norm_forward = batch_norm_forward<T>;
  table.batch_norm_backward = batch_norm_backward<T>;
  table.gru_step = gru_step<T>;
  table.gru_step_backward = gru_step_backward<T>;
  table.gru_gates_reset_before = gru_gates_reset_before<T>;
  table.gru_output_reset_before = gru_output_reset_before<T>;
  table.gru_output_reset_before_backward = gru_output_reset_before_backward<T>;
  table.gru_gates_reset_before_backward = gru_gates_reset_before_backward<T>;
  table.gather_rows = gather_rows<T>;
  table.scatter_add_rows = scatter_add_rows<T>;
}

template void add_nn_kernels<float>(Kernels<float>&);
template void add_nn_kernels<double>(Kernels<double>&);

}  // namespace glimpse::cpu::detail
