// Private to the CUDA backend: deterministic per-column sums over the rows of a [rows, cols] index
// space, the pattern of bias gradients, batch-norm statistics and layer-norm parameter gradients.
//
// No atomics: the rows are cut into fixed chunks, each block sums one chunk for 32 columns into
// scratch memory, and a second kernel adds the chunk results in chunk order. The split depends only
// on the sizes, so the sums come out bitwise the same on every run.
//
// What is summed comes from a Terms struct:
//   struct Terms {
//     static constexpr int kSums = 2;                  // sums computed per column
//     __device__ void operator()(int64_t row, int64_t col, float (&terms)[kSums]) const;
//   };
#pragma once
#include <cstdint>

#include "cuda/allocator.h"
#include "cuda/launch.cuh"

namespace glimpse::cuda::detail {

constexpr int kColumnsPerBlock = 32;  // one warp across consecutive columns: coalesced row reads
constexpr int kRowLanes = 8;          // rows of a chunk are shared out among 8 warps
constexpr int64_t kMinRowsPerChunk = 64;
constexpr int64_t kTargetBlocks = 1024;

// partial[(chunk * kSums + k) * cols + col] = sum of term k over the chunk's rows.
template <class Terms>
__global__ void column_partial_sums_kernel(Terms terms, int64_t rows, int64_t cols,
                                           int64_t rows_per_chunk, float* partial) {
  constexpr int kSums = Terms::kSums;
  __shared__ float lane_sums[kRowLanes][kSums][kColumnsPerBlock];
  const int64_t col = int64_t(blockIdx.x) * kColumnsPerBlock + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t row_begin = chunk * rows_per_chunk;
  const int64_t row_end = row_begin + rows_per_chunk < rows ? row_begin + rows_per_chunk : rows;

  float acc[kSums] = {};
  if (col < cols) {
    for (int64_t row = row_begin + threadIdx.y; row < row_end; row += kRowLanes) {
      float t[kSums];
      terms(row, col, t);
      for (int k = 0; k < kSums; ++k) acc[k] += t[k];
    }
  }
  for (int k = 0; k < kSums; ++k) lane_sums[threadIdx.y][k][threadIdx.x] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int k = 0; k < kSums; ++k) {
      float total = lane_sums[0][k][threadIdx.x];
      for (int lane = 1; lane < kRowLanes; ++lane) total += lane_sums[lane][k][threadIdx.x];
      partial[(chunk * kSums + k) * cols + col] = total;
    }
  }
}

// Where column_sums writes sum k: outputs[k][col]; a null pointer skips that sum.
template <int kSums>
struct ColumnOutputs {
  float* outputs[kSums];
};

// outputs[k][col] = (sum over chunks, in chunk order) / divisor.
template <int kSums>
__global__ void column_finish_kernel(const float* partial, int64_t chunks, int64_t cols,
                                     float divisor, ColumnOutputs<kSums> out) {
  const int64_t n = kSums * cols;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const int64_t k = i / cols;
    const int64_t col = i % cols;
    if (out.outputs[k] == nullptr) continue;
    float total = 0.0f;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      total += partial[(chunk * kSums + k) * cols + col];
    }
    out.outputs[k][col] = total / divisor;
  }
}

// Writes out.outputs[k][col] = (sum over rows of term k at (row, col)) / divisor, for every
// k < Terms::kSums whose output is not null. Zero rows give 0 / divisor.
template <class Terms>
void column_sums(const char* name, const Terms& terms, int64_t rows, int64_t cols,
                 ColumnOutputs<Terms::kSums> out, float divisor = 1.0f) {
  constexpr int kSums = Terms::kSums;
  if (cols <= 0) return;
  const int64_t column_blocks = ceil_div(cols, kColumnsPerBlock);
  // Enough chunks to give the GPU ~kTargetBlocks blocks, but each lane gets several rows.
  const int64_t max_chunks = std::max<int64_t>(1, ceil_div(rows, kMinRowsPerChunk));
  int64_t chunks = std::clamp<int64_t>(ceil_div(kTargetBlocks, column_blocks), 1, max_chunks);
  const int64_t rows_per_chunk = std::max<int64_t>(1, ceil_div(rows, chunks));
  chunks = std::max<int64_t>(1, ceil_div(rows, rows_per_chunk));

  ScratchBuffer<float> partial(chunks * kSums * cols);
  const dim3 grid(static_cast<unsigned int>(column_blocks), static_cast<unsigned int>(chunks));
  const dim3 block(kColumnsPerBlock, kRowLanes);
  column_partial_sums_kernel<Terms>
      <<<grid, block, 0, stream()>>>(terms, rows, cols, rows_per_chunk, partial.data());
  GLIMPSE_CUDA_CHECK_LAUNCH(name);
  column_finish_kernel<kSums><<<blocks_for(kSums * cols), kBlockThreads, 0, stream()>>>(
      partial.data(), chunks, cols, divisor, out);
  GLIMPSE_CUDA_CHECK_LAUNCH(name);
}

}  // namespace glimpse::cuda::detail
