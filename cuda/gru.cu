// One GRU step and its backward (Keras gate order z, r, h), one thread per (b, u): reset_after in
// one kernel each way; the reset gate before the recurrent matmul in two kernels each way, because
// that matmul (the caller's) needs r.
//
// reset_after:
// With xp = x W + b_in and hp = h_prev R + b_rec, each [B, 3U] split into z, r, h blocks:
//   z = sigmoid(xp_z + hp_z)   r = sigmoid(xp_r + hp_r)   c = tanh(xp_h + r * hp_h)
//   h_new = z * h_prev + (1 - z) * c
// gates saves (z, r, c) for the backward.
#include <cmath>

#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"

namespace glimpse::cuda::detail {
namespace {

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

struct GruStep {
  const float* xp;
  const float* hp;
  const float* h_prev;
  float* h_new;
  float* gates;
  int64_t U;
  __device__ void operator()(int64_t i) const {
    const int64_t b = i / U;
    const int64_t u = i % U;
    const int64_t zi = b * 3 * U + u;  // z, r, h of unit u sit at zi, zi + U, zi + 2U
    const int64_t ri = zi + U;
    const int64_t ci = zi + 2 * U;
    const float z = sigmoid(xp[zi] + hp[zi]);
    const float r = sigmoid(xp[ri] + hp[ri]);
    const float c = tanhf(xp[ci] + r * hp[ci]);
    h_new[i] = z * h_prev[i] + (1.0f - z) * c;
    gates[zi] = z;
    gates[ri] = r;
    gates[ci] = c;
  }
};

// Chain rule through the step, from gh = dL/dh_new:
//   dz = gh * (h_prev - c)        -> d(pre_z) = dz * z * (1 - z)        (to xp_z and hp_z)
//   dc = gh * (1 - z)             -> d(pre_c) = dc * (1 - c^2)          (to xp_h)
//   d(hp_h) = d(pre_c) * r,  dr = d(pre_c) * hp_h -> d(pre_r) = dr * r * (1 - r)
//   dh_prev (direct path only) = gh * z
struct GruStepBackward {
  const float* gh;
  const float* gates;
  const float* hp;
  const float* h_prev;
  float* dxp;
  float* dhp;
  float* dh_prev;
  int64_t U;
  __device__ void operator()(int64_t i) const {
    const int64_t b = i / U;
    const int64_t u = i % U;
    const int64_t zi = b * 3 * U + u;
    const int64_t ri = zi + U;
    const int64_t ci = zi + 2 * U;
    const float z = gates[zi];
    const float r = gates[ri];
    const float c = gates[ci];
    const float g = gh[i];
    const float d_pre_z = g * (h_prev[i] - c) * z * (1.0f - z);
    const float d_pre_c = g * (1.0f - z) * (1.0f - c * c);
    const float d_pre_r = d_pre_c * hp[ci] * r * (1.0f - r);
    dxp[zi] = d_pre_z;
    dxp[ri] = d_pre_r;
    dxp[ci] = d_pre_c;
    dhp[zi] = d_pre_z;
    dhp[ri] = d_pre_r;
    dhp[ci] = d_pre_c * r;
    dh_prev[i] = g * z;
  }
};

// Reset gate before the matmul, part 1: z, r from xp + hp (hp's z, r blocks = h_prev R_zr) and
// rh = r * h_prev, the input of the caller's rh R_h.
struct GruGatesResetBefore {
  const float* xp;
  const float* hp;
  const float* h_prev;
  float* gates;
  float* rh;
  int64_t U;
  __device__ void operator()(int64_t i) const {
    const int64_t zi = (i / U) * 3 * U + i % U;
    const int64_t ri = zi + U;
    const float r = sigmoid(xp[ri] + hp[ri]);
    gates[zi] = sigmoid(xp[zi] + hp[zi]);
    gates[ri] = r;
    rh[i] = r * h_prev[i];
  }
};

// Part 2: c = tanh(xp_h + hp_h) with hp_h = (r * h_prev) R_h; h_new = z * h_prev + (1 - z) * c.
struct GruOutputResetBefore {
  const float* xp;
  const float* hp;
  const float* h_prev;
  float* gates;
  float* h_new;
  int64_t U;
  __device__ void operator()(int64_t i) const {
    const int64_t zi = (i / U) * 3 * U + i % U;
    const int64_t ci = zi + 2 * U;
    const float z = gates[zi];
    const float c = tanhf(xp[ci] + hp[ci]);
    gates[ci] = c;
    h_new[i] = z * h_prev[i] + (1.0f - z) * c;
  }
};

// Backward of part 2: the z and h blocks of dpre, and dh_prev = gh * z (direct path).
struct GruOutputResetBeforeBackward {
  const float* gh;
  const float* gates;
  const float* h_prev;
  float* dpre;
  float* dh_prev;
  int64_t U;
  __device__ void operator()(int64_t i) const {
    const int64_t zi = (i / U) * 3 * U + i % U;
    const int64_t ci = zi + 2 * U;
    const float z = gates[zi];
    const float c = gates[ci];
    const float g = gh[i];
    dpre[zi] = g * (h_prev[i] - c) * z * (1.0f - z);
    dpre[ci] = g * (1.0f - z) * (1.0f - c * c);
    dh_prev[i] = g * z;
  }
};

// Backward of part 1 from drh = dL/d(r * h_prev): dpre's r block; dh_prev accumulates drh * r.
struct GruGatesResetBeforeBackward {
  const float* drh;
  const float* gates;
  const float* h_prev;
  float* dpre;
  float* dh_prev;
  int64_t U;
  __device__ void operator()(int64_t i) const {
    const int64_t ri = (i / U) * 3 * U + i % U + U;
    const float r = gates[ri];
    dpre[ri] = drh[i] * h_prev[i] * r * (1.0f - r);
    dh_prev[i] += drh[i] * r;
  }
};

}  // namespace

void gru_step(const float* xp, const float* hp, const float* h_prev, float* h_new, float* gates,
              int64_t B, int64_t U) {
  if (U <= 0) return;
  for_each_index("gru_step", B * U, GruStep{xp, hp, h_prev, h_new, gates, U});
}

void gru_step_backward(const float* gh, const float* gates, const float* hp, const float* h_prev,
                       float* dxp, float* dhp, float* dh_prev, int64_t B, int64_t U) {
  if (U <= 0) return;
  for_each_index("gru_step_backward", B * U,
                 GruStepBackward{gh, gates, hp, h_prev, dxp, dhp, dh_prev, U});
}

void gru_gates_reset_before(const float* xp, const float* hp, const float* h_prev, float* gates,
                            float* rh, int64_t B, int64_t U) {
  if (U <= 0) return;
  for_each_index("gru_gates_reset_before", B * U, GruGatesResetBefore{xp, hp, h_prev, gates, rh, U});
}

void gru_output_reset_before(const float* xp, const float* hp, const float* h_prev, float* gates,
                             float* h_new, int64_t B, int64_t U) {
  if (U <= 0) return;
  for_each_index("gru_output_reset_before", B * U,
                 GruOutputResetBefore{xp, hp, h_prev, gates, h_new, U});
}

void gru_output_reset_before_backward(const float* gh, const float* gates, const float* h_prev,
                                      float* dpre, float* dh_prev, int64_t B, int64_t U) {
  if (U <= 0) return;
  for_each_index("gru_output_reset_before_backward", B * U,
                 GruOutputResetBeforeBackward{gh, gates, h_prev, dpre, dh_prev, U});
}

void gru_gates_reset_before_backward(const float* drh, const float* gates, const float* h_prev,
                                     float* dpre, float* dh_prev, int64_t B, int64_t U) {
  if (U <= 0) return;
  for_each_index("gru_gates_reset_before_backward", B * U,
                 GruGatesResetBeforeBackward{drh, gates, h_prev, dpre, dh_prev, U});
}

}  // namespace glimpse::cuda::detail
