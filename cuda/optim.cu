// Optimizer updates (Keras Adam per tensor and fused over many tensors, SGD with momentum) and the
// dropout keep-mask, all element-wise.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "cuda/allocator.h"
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

// Element i of one tensor. The one place Adam's arithmetic is written on the GPU, so the
// per-tensor and the multi-tensor kernels give bit-identical results.
__device__ inline void adam_element(float* w, const float* g, float* m, float* v, int64_t i,
                                    float lr_t, float b1, float b2, float eps) {
  const float gi = g[i];
  const float mi = b1 * m[i] + (1.0f - b1) * gi;
  const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  w[i] -= lr_t * mi / (sqrtf(vi) + eps);
}

struct AdamUpdate {
  float* w;
  const float* g;
  float* m;
  float* v;
  float lr_t;
  float b1;
  float b2;
  float eps;
  __device__ void operator()(int64_t i) const { adam_element(w, g, m, v, i, lr_t, b1, b2, eps); }
};

// ---- Adam over many tensors in one launch ----------------------------------------------------
//
// A training step updates tens to hundreds of parameter tensors, most of them small (biases,
// norms); one launch each costs more in launch latency than in work. Instead the host writes a
// table with one row per non-empty tensor into a small device buffer, and one kernel covers them
// all: each tensor is cut into chunks of kAdamChunk elements, chunks are numbered across tensors
// in table order, and block b handles chunks b, b + gridDim.x, ... It finds a chunk's tensor by
// binary search on the rows' first_chunk (ascending, since rows are in order).

constexpr int64_t kAdamChunk = 8 * kBlockThreads;  // 8 elements per thread per chunk

struct AdamTensorRow {
  float* w;
  const float* g;
  float* m;
  float* v;
  int64_t n;            // > 0
  int64_t first_chunk;  // this tensor's chunks are [first_chunk, first_chunk + ceil(n / chunk))
};

__global__ void adam_update_multi_kernel(const AdamTensorRow* rows, int64_t num_rows,
                                         int64_t num_chunks, float lr_t, float b1, float b2,
                                         float eps) {
  for (int64_t chunk = blockIdx.x; chunk < num_chunks; chunk += gridDim.x) {
    // The last row whose first chunk is <= chunk (every thread of the block reads the same
    // addresses, so the search costs a few broadcast loads).
    int64_t lo = 0, hi = num_rows - 1;
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (rows[mid].first_chunk <= chunk) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const AdamTensorRow row = rows[lo];
    const int64_t begin = (chunk - row.first_chunk) * kAdamChunk;
    const int64_t end = min(row.n, begin + kAdamChunk);
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      adam_element(row.w, row.g, row.m, row.v, i, lr_t, b1, b2, eps);
    }
  }
}

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

// Host side of the table: pinned memory, so that the copy to the device is queued on the stream
// like a kernel (a copy from pageable memory may make the host wait for the stream first, which
// would stall every training step on the backward pass). The buffer is reused by the next call,
// after waiting for the event recorded behind this call's copy; by then that copy finished long
// ago (a whole training step).
class PinnedTableStaging {
 public:
  // Copies rows[0, count) to device_table on the backend's stream.
  void copy_to_device(const AdamTensorRow* rows, size_t count, AdamTensorRow* device_table) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (copy_pending_) GLIMPSE_CUDA_CHECK(cudaEventSynchronize(copied_));
    copy_pending_ = false;
    if (count > capacity_) {
      if (host_ != nullptr) GLIMPSE_CUDA_CHECK(cudaFreeHost(host_));
      host_ = nullptr;
      capacity_ = 0;
      const size_t capacity = std::max<size_t>(count, 256);
      GLIMPSE_CUDA_CHECK(cudaMallocHost(&host_, capacity * sizeof(AdamTensorRow)));
      capacity_ = capacity;
    }
    if (!event_created_) {
      GLIMPSE_CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
      event_created_ = true;
    }
    std::copy(rows, rows + count, host_);
    GLIMPSE_CUDA_CHECK(cudaMemcpyAsync(device_table, host_, count * sizeof(AdamTensorRow),
                                       cudaMemcpyHostToDevice, stream()));
    GLIMPSE_CUDA_CHECK(cudaEventRecord(copied_, stream()));
    copy_pending_ = true;
  }

 private:
  std::mutex mutex_;
  AdamTensorRow* host_ = nullptr;
  size_t capacity_ = 0;
  cudaEvent_t copied_ = nullptr;
  bool event_created_ = false;
  bool copy_pending_ = false;
};

// Never destroyed, like the allocator: CUDA may already be shut down during static destruction.
PinnedTableStaging& pinned_table_staging() {
  static PinnedTableStaging* const instance = new PinnedTableStaging();
  return *instance;
}

}  // namespace

void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset) {
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for_each_index("dropout_mask", n, DropoutMask{mask, p, keep_scale, seed, offset});
}

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr_t, float b1,
                 float b2, float eps) {
  for_each_index("adam_update", n, AdamUpdate{w, g, m, v, lr_t, b1, b2, eps});
}

void adam_update_multi(float* const* w, const float* const* g, float* const* m,
                       float* const* v, const int64_t* n, int64_t count, float lr_t, float b1,
                       float b2, float eps) {
  std::vector<AdamTensorRow> rows;
  rows.reserve(static_cast<size_t>(std::max<int64_t>(count, 0)));
  int64_t num_chunks = 0;
  for (int64_t k = 0; k < count; ++k) {
    if (n[k] <= 0) continue;  // owns no chunk: leaving it out keeps first_chunk strictly rising
    rows.push_back(AdamTensorRow{w[k], g[k], m[k], v[k], n[k], num_chunks});
    num_chunks += ceil_div(n[k], kAdamChunk);
  }
  if (rows.empty()) return;
  const int64_t num_rows = static_cast<int64_t>(rows.size());
  // The device table is a scratch block from the caching allocator, handed back as soon as the
  // kernel is queued (the next owner's work runs after it on the same stream).
  ScratchBuffer<AdamTensorRow> table(num_rows);
  pinned_table_staging().copy_to_device(rows.data(), rows.size(), table.data());
  adam_update_multi_kernel<<<blocks_for(num_chunks, 1), kBlockThreads, 0, stream()>>>(
      table.data(), num_rows, num_chunks, lr_t, b1, b2, eps);
  GLIMPSE_CUDA_CHECK_LAUNCH("adam_update_multi");
}

void sgd_update(float* w, const float* g, float* vel, int64_t n, float lr, float momentum,
                bool nesterov) {
  for_each_index("sgd_update", n, SgdUpdate{w, g, vel, lr, momentum, nesterov});
}

}  // namespace glimpse::cuda::detail
