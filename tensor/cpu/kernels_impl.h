// Private to the CPU backend (tensor/cpu/*.cpp): how loops are split over the thread pool
// (tensor/parallel.h),
// the deterministic summation helpers, and the functions through which each kernel file fills its
// part of the kernel table.
//
// Determinism: every sum here is computed in an order fixed by the sizes alone, never by the number
// of threads, so results are bit-identical whatever the thread count is. Threads only decide *who*
// computes each fixed block, never how blocks are grouped.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/collapsed_layout.h"
#include "tensor/kernels.h"
#include "tensor/parallel.h"

namespace glimpse::cpu::detail {

// Below about this many elements of work a loop runs on one thread: handing tasks to the pool costs
// about a microsecond, more than the loop itself for small tensors.
constexpr int64_t kParallelGrain = 1 << 15;

// Element-wise loops are cut into chunks of this many elements, one chunk per task.
constexpr int64_t kChunk = 1 << 14;

// A parallel loop is cut into at most this many tasks per thread. More tasks than threads is what
// lets a running thread take over the share of one the OS has descheduled (tensor/parallel.h);
// each task costs one atomic increment.
constexpr int64_t kTasksPerThread = 8;

// Calls fn(i) for every i in [0, count): on the thread pool when `parallel` (consecutive indices
// grouped into tasks), else in order on this thread. fn must not depend on which thread runs it.
template <class Fn>
void for_each_index(int64_t count, bool parallel, Fn&& fn) {
  if (count <= 0) return;
  const int64_t threads = parallel::num_threads();
  if (!parallel || count == 1 || threads == 1 || parallel::in_parallel_region()) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  const int64_t tasks = std::min(count, kTasksPerThread * threads);
  parallel::run_tasks(tasks, [&](int64_t task, int) {
    const int64_t end = count * (task + 1) / tasks;
    for (int64_t i = count * task / tasks; i < end; ++i) fn(i);
  });
}

// Calls fn(begin, end) on consecutive chunks covering [0, n), in parallel when n is large.
template <class Fn>
void for_each_chunk(int64_t n, Fn&& fn) {
  if (n <= 0) return;
  const int64_t num_chunks = (n + kChunk - 1) / kChunk;
  for_each_index(num_chunks, n >= kParallelGrain,
                 [&](int64_t chunk) { fn(chunk * kChunk, std::min(n, (chunk + 1) * kChunk)); });
}

// Calls fn(i) for i in [0, count), in parallel when count * work_per_item is large.
template <class Fn>
void parallel_for(int64_t count, int64_t work_per_item, Fn&& fn) {
  for_each_index(count, count * work_per_item >= kParallelGrain, fn);
}

// Sum of n contiguous values with 16 independent accumulators (which the compiler can keep in
// SIMD registers without -ffast-math, since the order is spelled out), combined pairwise.
template <class T>
T lane_sum(const T* x, int64_t n) {
  constexpr int kLanes = 16;
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) acc[lane] += x[i + lane];
  }
  for (int lane = 0; i < n; ++i, ++lane) acc[lane] += x[i];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int lane = 0; lane < width; ++lane) acc[lane] += acc[lane + width];
  }
  return acc[0];
}

// Long sums are split into blocks of this many values; block sums are added in block order.
constexpr int64_t kSumBlock = 1 << 13;

// Sum of n contiguous values: lane_sum of each fixed block, blocks added in order. The blocks are
// computed in parallel when allowed and n is large; the result is the same either way.
template <class T>
T blocked_sum(const T* x, int64_t n, bool allow_parallel) {
  const int64_t num_blocks = (n + kSumBlock - 1) / kSumBlock;
  if (num_blocks <= 1) return lane_sum(x, n);
  if (!allow_parallel || n < kParallelGrain) {  // same additions in the same order, no buffer
    T total = 0;
    for (int64_t b = 0; b < num_blocks; ++b) {
      total += lane_sum(x + b * kSumBlock, std::min(kSumBlock, n - b * kSumBlock));
    }
    return total;
  }
  std::vector<T> partial(num_blocks);
  for_each_index(num_blocks, true, [&](int64_t b) {
    partial[b] = lane_sum(x + b * kSumBlock, std::min(kSumBlock, n - b * kSumBlock));
  });
  T total = 0;
  for (int64_t b = 0; b < num_blocks; ++b) total += partial[b];
  return total;
}

// Column sums out[k * width + c] = sum over rows r of term_k(r, c), for k < num_sums: the pattern of
// bias gradients, batch-norm statistics and layer-norm parameter gradients.
// `accumulate(r_begin, r_end, c_begin, c_end, acc)` must add rows [r_begin, r_end)'s terms for
// columns [c_begin, c_end) into acc[k * width + c], visiting rows in increasing order.
// Narrow matrices: rows are cut into fixed blocks summed separately, then added in block order.
// Wide matrices: columns are cut into chunks and each column is summed over all rows in order.
template <class T, class Accumulate>
void column_sums(int64_t rows, int64_t width, int num_sums, T* out, Accumulate&& accumulate,
                 bool allow_parallel = true) {
  std::fill(out, out + num_sums * width, T(0));
  if (rows <= 0 || width <= 0) return;
  const bool parallel = allow_parallel && rows * width * num_sums >= kParallelGrain;
  constexpr int64_t kWideColumns = 2048;
  if (width >= kWideColumns) {
    constexpr int64_t kColumnChunk = 512;
    const int64_t num_chunks = (width + kColumnChunk - 1) / kColumnChunk;
    for_each_index(num_chunks, parallel, [&](int64_t chunk) {
      const int64_t c_begin = chunk * kColumnChunk;
      accumulate(int64_t(0), rows, c_begin, std::min(width, c_begin + kColumnChunk), out);
    });
    return;
  }
  const int64_t rows_per_block = std::max<int64_t>(1, kSumBlock / width);
  const int64_t num_blocks = (rows + rows_per_block - 1) / rows_per_block;
  if (num_blocks == 1) {
    accumulate(int64_t(0), rows, int64_t(0), width, out);
    return;
  }
  const int64_t block_size = num_sums * width;
  std::vector<T> partial(num_blocks * block_size, T(0));
  for_each_index(num_blocks, parallel, [&](int64_t b) {
    const int64_t r_begin = b * rows_per_block;
    accumulate(r_begin, std::min(rows, r_begin + rows_per_block), int64_t(0), width,
               partial.data() + b * block_size);
  });
  for (int64_t b = 0; b < num_blocks; ++b) {
    const T* block = partial.data() + b * block_size;
    for (int64_t j = 0; j < block_size; ++j) out[j] += block[j];
  }
}

// Strided index spaces (tensor/collapsed_layout.h), shared with the CUDA backend.
using glimpse::detail::CollapsedLayout;
using glimpse::detail::collapse_layout;

// Visits rows [row_begin, row_end) of the row-major index space formed by the outer axes
// [0, rank - 1) of `layout`, calling fn(row, offsets) with each operand's element offset. An
// odometer advances the offsets, so only the first row pays for divisions.
template <int kOperands, class Fn>
void walk_rows(const CollapsedLayout<kOperands>& layout, int64_t row_begin, int64_t row_end,
               Fn&& fn) {
  const int outer_rank = layout.rank - 1;
  int64_t index[kMaxRank] = {};
  int64_t offsets[kOperands] = {};
  int64_t rest = row_begin;
  for (int d = outer_rank - 1; d >= 0; --d) {
    index[d] = rest % layout.shape[d];
    rest /= layout.shape[d];
    for (int k = 0; k < kOperands; ++k) offsets[k] += index[d] * layout.strides[k][d];
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    fn(row, static_cast<const int64_t*>(offsets));
    for (int d = outer_rank - 1; d >= 0; --d) {
      ++index[d];
      for (int k = 0; k < kOperands; ++k) offsets[k] += layout.strides[k][d];
      if (index[d] < layout.shape[d]) break;
      for (int k = 0; k < kOperands; ++k) offsets[k] -= layout.strides[k][d] * layout.shape[d];
      index[d] = 0;
    }
  }
}

// Calls fn(row, offsets, begin, end) so that together the calls cover every element of every row
// of `layout` (elements [begin, end) of that row, at offsets[k] + i * step_k for operand k), in
// parallel tasks of about kChunk elements: blocks of short rows, or segments of long ones (a
// same-shape binary op collapses to a single row).
template <int kOperands, class Fn>
void parallel_walk_rows(const CollapsedLayout<kOperands>& layout, Fn&& fn) {
  const int64_t row_length = layout.shape[layout.rank - 1];
  const int64_t total = layout.size();
  if (total == 0) return;
  const int64_t rows = total / row_length;
  if (row_length >= kChunk) {
    const int64_t segments = (row_length + kChunk - 1) / kChunk;
    for_each_index(rows * segments, total >= kParallelGrain, [&](int64_t task) {
      const int64_t row = task / segments;
      const int64_t begin = (task % segments) * kChunk;
      const int64_t end = std::min(row_length, begin + kChunk);
      walk_rows(layout, row, row + 1,
                [&](int64_t r, const int64_t* offsets) { fn(r, offsets, begin, end); });
    });
    return;
  }
  const int64_t rows_per_block = kChunk / row_length;
  const int64_t num_blocks = (rows + rows_per_block - 1) / rows_per_block;
  for_each_index(num_blocks, total >= kParallelGrain, [&](int64_t b) {
    walk_rows(layout, b * rows_per_block, std::min(rows, (b + 1) * rows_per_block),
              [&](int64_t r, const int64_t* offsets) { fn(r, offsets, int64_t(0), row_length); });
  });
}

// Each kernel file fills the entries it implements; cpu/table.cpp assembles the tables.
// cpu/elementwise.cpp: fill, casts, axpy, copy_2d, unary(+backward), binary,
//                              pow_backward, where, dropout_mask, adam_update, sgd_update
template <class T> void add_elementwise_kernels(Kernels<T>& table);
// cpu/reduce.cpp: reduce_sum, reduce_prod(+backward), reduce_max(+backward),
//                         softmax(+backward), cross_entropy(+backward), argmax_rows, topk_rows
template <class T> void add_reduction_kernels(Kernels<T>& table);
// cpu/gemm.cpp: gemm, gemm_strided_batched
template <class T> void add_gemm_kernels(Kernels<T>& table);
// cpu/conv_pool.cpp: im2col, col2im, max/avg pooling (+backward)
template <class T> void add_conv_kernels(Kernels<T>& table);
// cpu/nn.cpp: layer_norm, batch_norm, gru_step, gather_rows/scatter_add_rows
template <class T> void add_nn_kernels(Kernels<T>& table);

}  // namespace glimpse::cpu::detail
