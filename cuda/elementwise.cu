// Element-wise kernels: fill, casts, axpy, 2-D block copies, the unary maps and their derivatives,
// broadcasting binary ops and their backward, and where. One thread per output element
// (grid-stride).
#include <cstdint>

#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"
#include "tensor/collapsed_layout.h"

namespace glimpse::cuda::detail {
namespace {

using glimpse::detail::CollapsedLayout;
using glimpse::detail::collapse_layout;

struct Fill {
  float* y;
  float value;
  __device__ void operator()(int64_t i) const { y[i] = value; }
};

struct CastFromI32 {
  const int32_t* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = static_cast<float>(x[i]); }
};

// Truncation toward zero; NaN becomes 0 and out-of-range values saturate (as on the CPU, where
// converting them directly would be undefined behaviour).
struct CastToI32 {
  const float* x;
  int32_t* y;
  __device__ void operator()(int64_t i) const {
    const float v = x[i];
    if (v != v) {
      y[i] = 0;
    } else if (v >= 2147483647.0f) {
      y[i] = INT32_MAX;
    } else if (v <= -2147483648.0f) {
      y[i] = INT32_MIN;
    } else {
      y[i] = static_cast<int32_t>(v);
    }
  }
};

struct Axpy {
  float alpha;
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] += alpha * x[i]; }
};

struct Copy2d {
  const float* src;
  int64_t src_ld;
  float* dst;
  int64_t dst_ld;
  int64_t cols;
  __device__ void operator()(int64_t i) const {
    const int64_t r = i / cols;
    const int64_t c = i % cols;
    dst[r * dst_ld + c] = src[r * src_ld + c];
  }
};

// One kernel per op, instantiated from the op's struct in tensor/elementwise_ops.h (the formulas
// the CPU uses too); the host picks it with visit_unary / visit_binary.
template <class Op>
struct UnaryMap {
  const float* x;
  float* y;
  float param;
  __device__ void operator()(int64_t i) const { y[i] = Op::value(x[i], param); }
};

template <class Op>
struct UnaryBackward {
  const float* x;
  const float* y;
  const float* gy;
  float* gx;
  float param;
  __device__ void operator()(int64_t i) const { gx[i] = Op::grad(x[i], y[i], gy[i], param); }
};

// Both operands contiguous in the output's shape: no index arithmetic at all.
template <class Op>
struct BinarySameShape {
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = Op::value(a[i], b[i]); }
};

template <class Op>
struct BinaryBroadcast {
  CollapsedLayout<2> layout;
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const {
    y[i] = Op::value(a[layout.offset(0, i)], b[layout.offset(1, i)]);
  }
};

template <class Op>
struct BinaryBackward {
  CollapsedLayout<2> layout;
  const float* a;
  const float* b;
  const float* y;
  const float* gy;
  float* ga;  // either may be null
  float* gb;
  __device__ void operator()(int64_t i) const {
    const float av = a[layout.offset(0, i)], bv = b[layout.offset(1, i)];
    if (ga != nullptr) ga[i] = Op::grad_a(av, bv, y[i], gy[i]);
    if (gb != nullptr) gb[i] = Op::grad_b(av, bv, y[i], gy[i]);
  }
};

struct Where {
  const float* cond;
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = cond[i] != 0.0f ? a[i] : b[i]; }
};

}  // namespace

void fill(float* y, int64_t n, float value) { for_each_index("fill", n, Fill{y, value}); }

void cast_from_i32(const int32_t* x, float* y, int64_t n) {
  for_each_index("cast_from_i32", n, CastFromI32{x, y});
}

void cast_to_i32(const float* x, int32_t* y, int64_t n) {
  for_each_index("cast_to_i32", n, CastToI32{x, y});
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
  for_each_index("axpy", n, Axpy{alpha, x, y});
}

void copy_2d(const float* src, int64_t src_ld, float* dst, int64_t dst_ld, int64_t rows,
             int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  for_each_index("copy_2d", rows * cols, Copy2d{src, src_ld, dst, dst_ld, cols});
}

void unary(UnaryOp op, const float* x, float* y, int64_t n, float param) {
  visit_unary(op, [&](auto f) {
    for_each_index("unary", n, UnaryMap<decltype(f)>{x, y, param});
  });
}

void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx,
                    int64_t n, float param) {
  visit_unary(op, [&](auto f) {
    for_each_index("unary_backward", n, UnaryBackward<decltype(f)>{x, y, gy, gx, param});
  });
}

void binary(BinaryOp op, const float* a, const float* b, float* y, const BroadcastLayout& layout) {
  const int64_t* const strides[2] = {layout.a_strides, layout.b_strides};
  const CollapsedLayout<2> collapsed = collapse_layout<2>(layout.rank, layout.shape, strides);
  const bool same_shape =
      collapsed.rank == 1 && collapsed.strides[0][0] == 1 && collapsed.strides[1][0] == 1;
  visit_binary(op, [&](auto f) {
    using Op = decltype(f);
    if (same_shape) {
      for_each_index("binary", collapsed.size(), BinarySameShape<Op>{a, b, y});
    } else {
      for_each_index("binary", collapsed.size(), BinaryBroadcast<Op>{collapsed, a, b, y});
    }
  });
}

void binary_backward(BinaryOp op, const float* a, const float* b, const float* y, const float* gy,
                     float* ga, float* gb, const BroadcastLayout& layout) {
  const int64_t* const strides[2] = {layout.a_strides, layout.b_strides};
  const CollapsedLayout<2> collapsed = collapse_layout<2>(layout.rank, layout.shape, strides);
  visit_binary(op, [&](auto f) {
    for_each_index("binary_backward", collapsed.size(),
                   BinaryBackward<decltype(f)>{collapsed, a, b, y, gy, ga, gb});
  });
}

void where(const float* cond, const float* a, const float* b, float* y, int64_t n) {
  for_each_index("where", n, Where{cond, a, b, y});
}

}  // namespace glimpse::cuda::detail
