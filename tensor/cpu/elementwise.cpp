// CPU element-wise kernels: fill, casts, axpy, copy_2d, unary maps and their derivatives,
// broadcasting binary ops and their backward, where, dropout masks and the optimizer updates
// (Adam per tensor and over many tensors at once, SGD).
// Transcendental maps go through Eigen's array functions, which are SIMD-vectorised without
// -ffast-math; simple maps are plain loops the compiler vectorises.
#include "tensor/cpu/eigen.h"
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/counter_rng.h"
#include "tensor/cpu/kernels_impl.h"

namespace glimpse::cpu::detail {
namespace {

template <class T>
using ArrayView = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstArrayView = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

template <class T>
void fill(T* y, int64_t n, T value) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) { std::fill(y + begin, y + end, value); });
}

template <class T>
void cast_from_i32(const int32_t* x, T* y, int64_t n) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = static_cast<T>(x[i]);
  });
}

// Truncation toward zero; NaN becomes 0 and out-of-range values saturate, because converting them
// directly is undefined behaviour in C++.
template <class T>
void cast_to_i32(const T* x, int32_t* y, int64_t n) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T v = x[i];
      if (!(v == v)) {
        y[i] = 0;
      } else if (v >= T(2147483647.0)) {
        y[i] = INT32_MAX;
      } else if (v <= T(-2147483648.0)) {
        y[i] = INT32_MIN;
      } else {
        y[i] = static_cast<int32_t>(v);
      }
    }
  });
}

template <class T>
void axpy(int64_t n, T alpha, const T* x, T* y) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] += alpha * x[i];
  });
}

template <class T>
void copy_2d(const T* src, int64_t src_ld, T* dst, int64_t dst_ld, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  parallel_for(rows, cols, [&](int64_t r) {
    std::memcpy(dst + r * dst_ld, src + r * src_ld, cols * sizeof(T));
  });
}

// The op's formulas come from tensor/elementwise_ops.h; visit_unary picks the op's struct once,
// so each op gets its own loop. Ops that give an Eigen array form (exp, log, tanh, sigmoid, sqrt)
// run it: Eigen vectorises those functions, the C library does not.
template <class T>
void unary(UnaryOp op, const T* x, T* y, int64_t n, T param) {
  visit_unary(op, [&](auto f) {
    using Op = decltype(f);
    for_each_chunk(n, [&](int64_t begin, int64_t end) {
      if constexpr (requires(ConstArrayView<T> xa) { Op::array(xa); }) {
        ArrayView<T>(y + begin, end - begin) = Op::array(ConstArrayView<T>(x + begin, end - begin));
      } else {
        for (int64_t i = begin; i < end; ++i) y[i] = Op::value(x[i], param);
      }
    });
  });
}

template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T param) {
  visit_unary(op, [&](auto f) {
    using Op = decltype(f);
    for_each_chunk(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) gx[i] = Op::grad(x[i], y[i], gy[i], param);
    });
  });
}

// One inner loop per (a step, b step) pattern, so the common contiguous, scalar and
// row-broadcast cases compile to SIMD loops.
template <class T, class Op>
void binary_row(Op op, const T* a, int64_t step_a, const T* b, int64_t step_b, T* y, int64_t n) {
  if (step_a == 1 && step_b == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = op(a[i], b[i]);
  } else if (step_a == 1 && step_b == 0) {
    const T bv = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = op(a[i], bv);
  } else if (step_a == 0 && step_b == 1) {
    const T av = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = op(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = op(a[i * step_a], b[i * step_b]);
  }
}

// Walks the output of a broadcasting binary op row by row over the pool: the layout is collapsed,
// its innermost axis is the row, and fn(a_row, step_a, b_row, step_b, out_offset, begin, end) gets
// each chunk [begin, end) of a row with the operands' row starts and steps along it.
template <class T, class Fn>
void parallel_broadcast_rows(const T* a, const T* b, const BroadcastLayout& layout, Fn&& fn) {
  const int64_t* const strides[2] = {layout.a_strides, layout.b_strides};
  const auto collapsed = collapse_layout<2>(layout.rank, layout.shape, strides);
  const int last = collapsed.rank - 1;
  const int64_t row_length = collapsed.shape[last];
  const int64_t step_a = collapsed.strides[0][last];
  const int64_t step_b = collapsed.strides[1][last];
  parallel_walk_rows(collapsed, [&](int64_t row, const int64_t* offsets, int64_t begin, int64_t end) {
    fn(a + offsets[0], step_a, b + offsets[1], step_b, row * row_length, begin, end);
  });
}

template <class T>
void binary(BinaryOp op, const T* a, const T* b, T* y, const BroadcastLayout& layout) {
  visit_binary(op, [&](auto f) {
    using Op = decltype(f);
    parallel_broadcast_rows(a, b, layout, [&](const T* ar, int64_t step_a, const T* br, int64_t step_b,
                                              int64_t base, int64_t begin, int64_t end) {
      binary_row([](T u, T v) { return Op::value(u, v); }, ar + begin * step_a, step_a,
                 br + begin * step_b, step_b, y + base + begin, end - begin);
    });
  });
}

template <class T>
void binary_backward(BinaryOp op, const T* a, const T* b, const T* y, const T* gy, T* ga, T* gb,
                     const BroadcastLayout& layout) {
  visit_binary(op, [&](auto f) {
    using Op = decltype(f);
    parallel_broadcast_rows(a, b, layout, [&](const T* ar, int64_t step_a, const T* br, int64_t step_b,
                                              int64_t base, int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const T av = ar[j * step_a], bv = br[j * step_b];
        const int64_t out = base + j;
        if (ga != nullptr) ga[out] = Op::grad_a(av, bv, y[out], gy[out]);
        if (gb != nullptr) gb[out] = Op::grad_b(av, bv, y[out], gy[out]);
      }
    });
  });
}

template <class T>
void where(const T* cond, const T* a, const T* b, T* y, int64_t n) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = cond[i] != T(0) ? a[i] : b[i];
  });
}

// The draw is always the float counter_uniform, also for T = double, so a mask is the same whatever
// the precision and device.
template <class T>
void dropout_mask(T* mask, int64_t n, T p, uint64_t seed, uint64_t offset) {
  const float drop_probability = static_cast<float>(p);
  const T keep_scale = p < T(1) ? T(1) / (T(1) - p) : T(0);
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float u = counter_uniform(seed, offset + static_cast<uint64_t>(i));
      // Arithmetic rather than a branch: a random keep/drop would mispredict constantly.
      mask[i] = static_cast<T>(u >= drop_probability) * keep_scale;
    }
  });
}

// Elements [begin, end) of one tensor. The one place Adam's arithmetic is written, so the
// per-tensor and the multi-tensor entries give bit-identical results.
template <class T>
inline void adam_range(T* w, const T* g, T* m, T* v, int64_t begin, int64_t end, T lr_t, T b1,
                       T b2, T eps) {
  for (int64_t i = begin; i < end; ++i) {
    const T gi = g[i];
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= lr_t * mi / (std::sqrt(vi) + eps);
  }
}

template <class T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, T lr_t, T b1, T b2, T eps) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    adam_range(w, g, m, v, begin, end, lr_t, b1, b2, eps);
  });
}

// Every tensor is cut into kChunk-element chunks (as for_each_chunk would cut it alone), and the
// chunks of all tensors form one parallel loop: a model's many small tensors (biases, norms) share
// one OpenMP team instead of each running alone, and large ones still split across threads.
template <class T>
void adam_update_multi(T* const* w, const T* const* g, T* const* m, T* const* v, const int64_t* n,
                       int64_t count, T lr_t, T b1, T b2, T eps) {
  if (count <= 0) return;
  // chunk_start[k] = index of tensor k's first chunk in the flattened list; chunk_start[count] =
  // the number of chunks. Empty tensors own no chunk.
  std::vector<int64_t> chunk_start(static_cast<size_t>(count) + 1, 0);
  int64_t total = 0;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t size = std::max<int64_t>(n[k], 0);
    chunk_start[k + 1] = chunk_start[k] + (size + kChunk - 1) / kChunk;
    total += size;
  }
  const int64_t num_chunks = chunk_start[count];
  for_each_index(num_chunks, total >= kParallelGrain, [&](int64_t chunk) {
    // The owner is the last tensor starting at or before this chunk (empty tensors share their
    // start with the next tensor, so they are never chosen).
    const int64_t k =
        std::upper_bound(chunk_start.begin(), chunk_start.end(), chunk) - chunk_start.begin() - 1;
    const int64_t begin = (chunk - chunk_start[k]) * kChunk;
    adam_range(w[k], g[k], m[k], v[k], begin, std::min(n[k], begin + kChunk), lr_t, b1, b2, eps);
  });
}

// With momentum == 0 the velocity buffer may be null: plain w -= lr g.
template <class T>
void sgd_update(T* w, const T* g, T* vel, int64_t n, T lr, T momentum, bool nesterov) {
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    if (vel == nullptr) {
      for (int64_t i = begin; i < end; ++i) w[i] -= lr * g[i];
      return;
    }
    for (int64_t i = begin; i < end; ++i) {
      const T velocity = momentum * vel[i] - lr * g[i];
      vel[i] = velocity;
      w[i] += nesterov ? momentum * velocity - lr * g[i] : velocity;
    }
  });
}

}  // namespace

template <class T>
void add_elementwise_kernels(Kernels<T>& table) {
  table.fill = fill<T>;
  table.cast_from_i32 = cast_from_i32<T>;
  table.cast_to_i32 = cast_to_i32<T>;
  table.axpy = axpy<T>;
  table.copy_2d = copy_2d<T>;
  table.unary = unary<T>;
  table.unary_backward = unary_backward<T>;
  table.binary = binary<T>;
  table.binary_backward = binary_backward<T>;
  table.where = where<T>;
  table.dropout_mask = dropout_mask<T>;
  table.adam_update = adam_update<T>;
  table.adam_update_multi = adam_update_multi<T>;
  table.sgd_update = sgd_update<T>;
}

template void add_elementwise_kernels<float>(Kernels<float>&);
template void add_elementwise_kernels<double>(Kernels<double>&);

}  // namespace glimpse::cpu::detail
