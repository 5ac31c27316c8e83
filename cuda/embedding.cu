// Embedding lookups: gather table rows by index, and the backward that adds gradient rows back.
#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"

namespace glimpse::cuda::detail {
namespace {

// ONNX Gather / NumPy take: a negative index counts from the end of the table.
__device__ inline int64_t wrap_row(int32_t index, int64_t n_rows) {
  return index < 0 ? static_cast<int64_t>(index) + n_rows : static_cast<int64_t>(index);
}

struct GatherRows {
  const float* table;
  int64_t n_rows;
  const int32_t* idx;
  float* out;
  int64_t row_size;
  __device__ void operator()(int64_t i) const {
    const int64_t row = wrap_row(idx[i / row_size], n_rows);
    out[i] = table[row * row_size + i % row_size];
  }
};

// A token may appear many times in a batch, so several threads add into the same table row:
// atomicAdd makes that safe. (The order of the additions, and so the last bits, may vary run to
// run; an embedding gradient does not need bitwise reproducibility.)
struct ScatterAddRows {
  const float* gout;
  const int32_t* idx;
  float* gtable;
  int64_t n_rows;
  int64_t row_size;
  __device__ void operator()(int64_t i) const {
    const int64_t row = wrap_row(idx[i / row_size], n_rows);
    atomicAdd(gtable + row * row_size + i % row_size, gout[i]);
  }
};

}  // namespace

void gather_rows(const float* table, int64_t n_rows, const int32_t* idx, float* out,
                 int64_t n_idx, int64_t row_size) {
  if (row_size <= 0) return;
  for_each_index("gather_rows", n_idx * row_size, GatherRows{table, n_rows, idx, out, row_size});
}

void scatter_add_rows(const float* gout, const int32_t* idx, float* gtable, int64_t n_rows,
                      int64_t n_idx, int64_t row_size) {
  if (row_size <= 0) return;
  for_each_index("scatter_add_rows", n_idx * row_size,
                 ScatterAddRows{gout, idx, gtable, n_rows, row_size});
}

}  // namespace glimpse::cuda::detail
