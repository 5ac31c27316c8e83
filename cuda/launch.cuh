// Private to the CUDA backend: launch geometry, grid-stride loops and the one-thread-per-element
// launcher that most element-wise kernels are written with.
//
// Sizes are int64_t throughout: a tensor may hold more than 2^31 elements, so every index
// computation is 64-bit and grids are capped, with grid-stride loops covering the rest.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cuda/backend.h"
#include "cuda/check.h"

namespace glimpse::cuda::detail {

constexpr int kBlockThreads = 256;
// Enough blocks to fill any current GPU many times over; grid-stride loops do the rest.
constexpr int64_t kMaxBlocks = int64_t(1) << 16;

inline unsigned int blocks_for(int64_t work_items, int threads_per_block = kBlockThreads) {
  const int64_t blocks = (work_items + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned int>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

__device__ inline int64_t global_thread_index() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_thread_count() { return int64_t(gridDim.x) * blockDim.x; }

// Calls fn(i) for every i in [0, n).
template <class Fn>
__global__ void for_each_index_kernel(int64_t n, Fn fn) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) fn(i);
}

// Launches fn(i) for i in [0, n) on the backend's stream; nothing at all when n <= 0. `name` is for
// the error message if the launch fails. Fn is a small struct with a __device__ operator().
template <class Fn>
void for_each_index(const char* name, int64_t n, const Fn& fn) {
  if (n <= 0) return;
  for_each_index_kernel<Fn><<<blocks_for(n), kBlockThreads, 0, stream()>>>(n, fn);
  GLIMPSE_CUDA_CHECK_LAUNCH(name);
}

}  // namespace glimpse::cuda::detail
