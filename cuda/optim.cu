// Optimizer updates (Keras Adam and SGD with momentum) and the dropout keep-mask, all element-wise.
#include <cmath>

#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"
#include "tensor/counter_rng.h"

namespace glimpse::cuda::detail {
namespace {

// The random number of element i depends only on (seed, offset + i) -- see tensor/counter_rng.h --
// so the mask is the CPU backend's mask bit for bit, however the work is split.
struct DropoutMask {
  float* mask;
  float p;
  float keep_scale;
  uint64_t seed;
  uint64_t offset;
  __device__ void operator()(int64_t i) const {
    const float u = counter_uniform(seed, offset + static_cast<uint64_t>(i));
    mask[i] = u >= p ? keep_scale : 0.0f;
  }
};

struct AdamUpdate {
  float* w;
  const float* g;
  float* m;
  float* v;
  float lr_t;
  float b1;
  float b2;
  float eps;
  __device__ void operator()(int64_t i) const {
    const float gi = g[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= lr_t * mi / (sqrtf(vi) + eps);
  }
};

struct SgdUpdate {
  float* w;
  const float* g;
  float* vel;
  float lr;
  float momentum;
  bool nesterov;
  __device__ void operator()(int64_t i) const {
    if (vel == nullptr) {  // momentum 0 needs no velocity buffer: plain w -= lr g
      w[i] -= lr * g[i];
      return;
    }
    const float velocity = momentum * vel[i] - lr * g[i];
    vel[i] = velocity;
    w[i] += nesterov ? momentum * velocity - lr * g[i] : velocity;
  }
};

}  // namespace

void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) {
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for_each_index("dropout_mask", n, DropoutMask{mask, p, keep_scale, seed, offset});
}

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr_t, float b1,
                 float b2, float eps) {
  for_each_index("adam_update", n, AdamUpdate{w, g, m, v, lr_t, b1, b2, eps});
}

void sgd_update(float* w, const float* g, float* vel, int64_t n, float lr, float momentum,
                bool nesterov) {
  for_each_index("sgd_update", n, SgdUpdate{w, g, vel, lr, momentum, nesterov});
}

}  // namespace glimpse::cuda::detail
