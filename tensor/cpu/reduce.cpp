// CPU reduction kernels: sums, products (and their backward) and maxima over the middle axis of
// [outer, R, inner], softmax and log-softmax, fused cross-entropy, and row-wise argmax / top-k.
// Sums follow the fixed blocking of cpu/kernels_impl.h, so results do not depend on thread count.
#include "tensor/cpu/eigen.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "tensor/cpu/kernels_impl.h"

namespace glimpse::cpu::detail {
namespace {

template <class T>
using ArrayView = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstArrayView = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// "v beats best" for maxima: larger wins, the earlier index keeps ties, and the first NaN wins
// so that a NaN is never hidden by the reduction.
template <class T>
bool beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// Runs body(o, allow_parallel) for every outer slice: the slices in parallel when there are enough
// of them to occupy the threads, otherwise one after another with parallelism inside each. The
// arithmetic of a slice is the same either way.
template <class Body>
void for_each_outer(int64_t outer, int64_t slice_work, Body&& body) {
  if (outer >= parallel::num_threads()) {
    parallel_for(outer, slice_work, [&](int64_t o) { body(o, false); });
  } else {
    for (int64_t o = 0; o < outer; ++o) body(o, true);
  }
}

template <class T>
void reduce_sum(const T* x, T* y, int64_t outer, int64_t R, int64_t inner) {
  if (inner == 1) {
    for_each_outer(outer, R, [&](int64_t o, bool allow_parallel) {
      y[o] = blocked_sum(x + o * R, R, allow_parallel);
    });
    return;
  }
  for_each_outer(outer, R * inner, [&](int64_t o, bool allow_parallel) {
    const T* slice = x + o * R * inner;
    auto accumulate = [&](int64_t r_begin, int64_t r_end, int64_t c_begin, int64_t c_end, T* acc) {
      for (int64_t r = r_begin; r < r_end; ++r) {
        const T* row = slice + r * inner;
        for (int64_t c = c_begin; c < c_end; ++c) acc[c] += row[c];
      }
    };
    column_sums<T>(R, inner, 1, y + o * inner, accumulate, allow_parallel);
  });
}

// Products multiply in the order r = 0, 1, ..., R-1 whatever the thread count (tasks split only
// the independent columns), so results are reproducible. Tasks are (outer slice, chunk of inner
// columns), as for the maxima below.
constexpr int64_t kProdColumns = 256;

template <class T>
void reduce_prod(const T* x, T* y, int64_t outer, int64_t R, int64_t inner) {
  const int64_t chunks_per_slice = (inner + kProdColumns - 1) / kProdColumns;
  parallel_for(outer * chunks_per_slice, std::max<int64_t>(R, 1) * std::min(inner, kProdColumns),
               [&](int64_t task) {
                 const int64_t o = task / chunks_per_slice;
                 const int64_t c_begin = (task % chunks_per_slice) * kProdColumns;
                 const int64_t c_end = std::min(inner, c_begin + kProdColumns);
                 const T* slice = x + o * R * inner;
                 T* acc = y + o * inner;
                 for (int64_t c = c_begin; c < c_end; ++c) acc[c] = T(1);
                 for (int64_t r = 0; r < R; ++r) {
                   const T* row = slice + r * inner;
                   for (int64_t c = c_begin; c < c_end; ++c) acc[c] *= row[c];
                 }
               });
}

// Two sweeps per column: the ascending one writes the exclusive prefix product into gx, the
// descending one multiplies in gy times the exclusive suffix product. Dividing y by x[r] instead
// would be one sweep, but gives NaN at a zero and loses the single non-zero gradient of a column
// holding exactly one zero.
template <class T>
void reduce_prod_backward(const T* x, const T* gy, T* gx, int64_t outer, int64_t R,
                          int64_t inner) {
  const int64_t chunks_per_slice = (inner + kProdColumns - 1) / kProdColumns;
  parallel_for(outer * chunks_per_slice, 2 * R * std::min(inner, kProdColumns), [&](int64_t task) {
    const int64_t o = task / chunks_per_slice;
    const int64_t c_begin = (task % chunks_per_slice) * kProdColumns;
    const int64_t width = std::min(inner, c_begin + kProdColumns) - c_begin;
    const T* xs = x + o * R * inner + c_begin;
    T* gs = gx + o * R * inner + c_begin;
    const T* g = gy + o * inner + c_begin;
    T running[kProdColumns];
    for (int64_t c = 0; c < width; ++c) running[c] = T(1);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t c = 0; c < width; ++c) {
        gs[r * inner + c] = running[c];
        running[c] *= xs[r * inner + c];
      }
    }
    for (int64_t c = 0; c < width; ++c) running[c] = g[c];
    for (int64_t r = R - 1; r >= 0; --r) {
      for (int64_t c = 0; c < width; ++c) {
        gs[r * inner + c] *= running[c];
        running[c] *= xs[r * inner + c];
      }
    }
  });
}

template <class T>
void reduce_max(const T* x, T* y, int32_t* argmax, int64_t outer, int64_t R, int64_t inner) {
  if (R == 0) {  // the ops layer rejects this; keep the outputs defined anyway
    std::fill(y, y + outer * inner, -std::numeric_limits<T>::infinity());
    std::fill(argmax, argmax + outer * inner, 0);
    return;
  }
  // Tasks are (outer slice, chunk of inner columns); each scans R in order.
  constexpr int64_t kColumns = 256;
  const int64_t chunks_per_slice = (inner + kColumns - 1) / kColumns;
  parallel_for(outer * chunks_per_slice, R * std::min(inner, kColumns), [&](int64_t task) {
    const int64_t o = task / chunks_per_slice;
    const int64_t c_begin = (task % chunks_per_slice) * kColumns;
    const int64_t c_end = std::min(inner, c_begin + kColumns);
    const T* slice = x + o * R * inner;
    T* best = y + o * inner;
    int32_t* best_index = argmax + o * inner;
    for (int64_t c = c_begin; c < c_end; ++c) {
      best[c] = slice[c];
      best_index[c] = 0;
    }
    for (int64_t r = 1; r < R; ++r) {
      const T* row = slice + r * inner;
      for (int64_t c = c_begin; c < c_end; ++c) {
        if (beats(row[c], best[c])) {
          best[c] = row[c];
          best_index[c] = static_cast<int32_t>(r);
        }
      }
    }
  });
}

template <class T>
void reduce_max_backward(const T* gy, const int32_t* argmax, T* gx, int64_t outer, int64_t R,
                         int64_t inner) {
  for_each_chunk(outer * R * inner,
                 [&](int64_t begin, int64_t end) { std::fill(gx + begin, gx + end, T(0)); });
  // Every (o, i) owns a distinct gx element, so the scatter is race-free.
  parallel_for(outer * inner, 1, [&](int64_t oi) {
    const int64_t o = oi / inner;
    const int64_t i = oi % inner;
    gx[(o * R + argmax[oi]) * inner + i] = gy[oi];
  });
}

template <class T>
void softmax(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  if (cols <= 0) return;
  parallel_for(rows, cols, [&](int64_t r) {
    ConstArrayView<T> xr(x + r * cols, cols);
    ArrayView<T> yr(y + r * cols, cols);
    // Subtracting the row max keeps exp() from overflowing; the result is unchanged.
    const T row_max = xr.maxCoeff();
    if (log) {
      // (x - max) - log_sum, never x - (max + log_sum): with logits around 1e4, max + log_sum is
      // rounded to float's spacing there (2^-10), an error that x - max (exact) avoids.
      const T log_sum = std::log((xr - row_max).exp().sum());
      yr = (xr - row_max) - log_sum;
    } else {
      yr = (xr - row_max).exp();
      yr *= T(1) / lane_sum(y + r * cols, cols);
    }
  });
}

template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) {
  parallel_for(rows, cols, [&](int64_t r) {
    ConstArrayView<T> yr(y + r * cols, cols);
    ConstArrayView<T> gyr(gy + r * cols, cols);
    ArrayView<T> gxr(gx + r * cols, cols);
    if (log) {  // y = x - logsumexp(x): dx = gy - softmax * sum(gy)
      const T gy_sum = lane_sum(gy + r * cols, cols);
      gxr = gyr - yr.exp() * gy_sum;
    } else {  // dx = y * (gy - <gy, y>)
      const T dot = (gyr * yr).sum();
      gxr = yr * (gyr - dot);
    }
  });
}

template <class T>
void cross_entropy(const T* logits, const int32_t* targets, T* loss, T* valid, int64_t rows,
                   int64_t cols, int32_t ignore_index) {
  if (cols <= 0) return;
  parallel_for(rows, cols, [&](int64_t r) {
    if (targets[r] == ignore_index) {
      loss[r] = T(0);
      valid[r] = T(0);
      return;
    }
    ConstArrayView<T> xr(logits + r * cols, cols);
    const T row_max = xr.maxCoeff();
    // log(sum exp(x)) - x[t] = log(sum exp(x - max)) - (x[t] - max), in that order (see softmax).
    const T log_sum = std::log((xr - row_max).exp().sum());
    loss[r] = log_sum - (xr[targets[r]] - row_max);
    valid[r] = T(1);
  });
}

template <class T>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* gloss, T* glogits,
                            int64_t rows, int64_t cols, int32_t ignore_index) {
  if (cols <= 0) return;
  parallel_for(rows, cols, [&](int64_t r) {
    ArrayView<T> gr(glogits + r * cols, cols);
    if (targets[r] == ignore_index) {
      gr.setZero();
      return;
    }
    ConstArrayView<T> xr(logits + r * cols, cols);
    const T row_max = xr.maxCoeff();
    gr = (xr - row_max).exp();
    gr *= gloss[r] / lane_sum(glogits + r * cols, cols);
    gr[targets[r]] -= gloss[r];
  });
}

template <class T>
void argmax_rows(const T* x, int32_t* idx, int64_t rows, int64_t cols) {
  parallel_for(rows, cols, [&](int64_t r) {
    const T* row = x + r * cols;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c) {
      if (beats(row[c], row[best])) best = c;
    }
    idx[r] = static_cast<int32_t>(best);
  });
}

template <class T>
void topk_rows(const T* x, T* values, int32_t* idx, int64_t rows, int64_t cols, int64_t k) {
  const int64_t kept = std::min(k, cols);  // k <= cols is the ops layer's check
  if (kept <= 0) return;
  parallel_for(rows, cols, [&](int64_t r) {
    // One scratch buffer per thread, reused for every row it sorts.
    thread_local std::vector<int32_t> order;
    order.resize(cols);
    const T* row = x + r * cols;
    // A strict total order: larger value first, ties by lower index, NaN after every number.
    auto comes_first = [row](int32_t i, int32_t j) {
      const T a = row[i];
      const T b = row[j];
      const bool a_nan = a != a;
      const bool b_nan = b != b;
      if (a_nan || b_nan) return a_nan == b_nan ? i < j : b_nan;
      return a != b ? a > b : i < j;
    };
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + kept, order.end(), comes_first);
    for (int64_t j = 0; j < kept; ++j) {
      values[r * k + j] = row[order[j]];
      idx[r * k + j] = order[j];
    }
  });
}

}  // namespace

template <class T>
void add_reduction_kernels(Kernels<T>& table) {
  table.reduce_sum = reduce_sum<T>;
  table.reduce_prod = reduce_prod<T>;
  table.reduce_prod_backward = reduce_prod_backward<T>;
  table.reduce_max = reduce_max<T>;
  table.reduce_max_backward = reduce_max_backward<T>;
  table.softmax = softmax<T>;
  table.softmax_backward = softmax_backward<T>;
  table.cross_entropy = cross_entropy<T>;
  table.cross_entropy_backward = cross_entropy_backward<T>;
  table.argmax_rows = argmax_rows<T>;
  table.topk_rows = topk_rows<T>;
}

template void add_reduction_kernels<float>(Kernels<float>&);
template void add_reduction_kernels<double>(Kernels<double>&);

}  // namespace glimpse::cpu::detail
