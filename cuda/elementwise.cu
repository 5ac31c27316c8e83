// Element-wise kernels: fill, casts, axpy, 2-D block copies, the unary maps and their derivatives,
// broadcasting binary ops (and pow's backward) and where. One thread per output element
// (grid-stride).
#include <cstdint>

#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"
#include "cuda/strided_layout.cuh"

namespace glimpse::cuda::detail {
namespace {

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

__device__ float apply_unary(UnaryOp op, float x, float p) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Sigmoid: return 1.0f / (1.0f + expf(-x));
    case UnaryOp::Relu: return x < 0.0f ? 0.0f : x;  // NaN stays NaN
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Abs: return fabsf(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::AddScalar: return x + p;
    case UnaryOp::MulScalar: return x * p;
    case UnaryOp::PowScalar: return p == 2.0f ? x * x : powf(x, p);  // x * x is exact
  }
  return 0.0f;
}

// dL/dx from dL/dy; y = f(x) is given because several derivatives are cheapest from it.
__device__ float unary_derivative_times(UnaryOp op, float x, float y, float gy, float p) {
  switch (op) {
    case UnaryOp::Neg: return -gy;
    case UnaryOp::Exp: return gy * y;
    case UnaryOp::Log: return gy / x;
    case UnaryOp::Tanh: return gy * (1.0f - y * y);
    case UnaryOp::Sigmoid: return gy * y * (1.0f - y);
    case UnaryOp::Relu: return x > 0.0f ? gy : 0.0f;
    case UnaryOp::Sqrt: return gy * 0.5f / y;
    case UnaryOp::Abs: return x > 0.0f ? gy : (x < 0.0f ? -gy : 0.0f);
    case UnaryOp::Square: return gy * 2.0f * x;
    case UnaryOp::AddScalar: return gy;
    case UnaryOp::MulScalar: return gy * p;
    case UnaryOp::PowScalar: return gy * p * powf(x, p - 1.0f);
  }
  return 0.0f;
}

struct Unary {
  UnaryOp op;
  const float* x;
  float* y;
  float param;
  __device__ void operator()(int64_t i) const { y[i] = apply_unary(op, x[i], param); }
};

struct UnaryBackward {
  UnaryOp op;
  const float* x;
  const float* y;
  const float* gy;
  float* gx;
  float param;
  __device__ void operator()(int64_t i) const {
    gx[i] = unary_derivative_times(op, x[i], y[i], gy[i], param);
  }
};

__device__ float apply_binary(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return powf(a, b);
  }
  return 0.0f;
}

// The partial derivatives of a^b with the CPU's conventions (tensor/cpu_kernels_elementwise.cpp):
// 0 in a where b == 0, 0 in b where a == 0 and b >= 0, NaN in b for a negative base.
__device__ float pow_base_derivative(float a, float b) {
  return b == 0.0f ? 0.0f : b * powf(a, b - 1.0f);
}
__device__ float pow_exponent_derivative(float a, float b, float y) {
  return a == 0.0f && b >= 0.0f ? 0.0f : y * logf(a);
}

// Both operands contiguous in the output's shape: no index arithmetic at all.
struct BinarySameShape {
  BinaryOp op;
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = apply_binary(op, a[i], b[i]); }
};

struct BinaryBroadcast {
  BinaryOp op;
  CollapsedLayout<2> layout;
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const {
    y[i] = apply_binary(op, a[layout.offset(0, i)], b[layout.offset(1, i)]);
  }
};

struct PowBackward {
  CollapsedLayout<2> layout;
  const float* a;
  const float* b;
  const float* y;
  const float* gy;
  float* ga;  // either may be null
  float* gb;
  __device__ void operator()(int64_t i) const {
    const float av = a[layout.offset(0, i)], bv = b[layout.offset(1, i)];
    if (ga != nullptr) ga[i] = gy[i] * pow_base_derivative(av, bv);
    if (gb != nullptr) gb[i] = gy[i] * pow_exponent_derivative(av, bv, y[i]);
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
  for_each_index("unary", n, Unary{op, x, y, param});
}

void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx,
                    int64_t n, float param) {
  for_each_index("unary_backward", n, UnaryBackward{op, x, y, gy, gx, param});
}

void binary(BinaryOp op, const float* a, const float* b, float* y, const BroadcastLayout& layout) {
  const int64_t* const strides[2] = {layout.a_strides, layout.b_strides};
  const CollapsedLayout<2> collapsed = collapse_layout<2>(layout.rank, layout.shape, strides);
  const bool same_shape =
      collapsed.rank == 0 ||
      (collapsed.rank == 1 && collapsed.strides[0][0] == 1 && collapsed.strides[1][0] == 1);
  if (same_shape) {
    for_each_index("binary", collapsed.size(), BinarySameShape{op, a, b, y});
  } else {
    for_each_index("binary", collapsed.size(), BinaryBroadcast{op, collapsed, a, b, y});
  }
}

void pow_backward(const float* a, const float* b, const float* y, const float* gy, float* ga,
                  float* gb, const BroadcastLayout& layout) {
  const int64_t* const strides[2] = {layout.a_strides, layout.b_strides};
  const CollapsedLayout<2> collapsed = collapse_layout<2>(layout.rank, layout.shape, strides);
  for_each_index("pow_backward", collapsed.size(), PowBackward{collapsed, a, b, y, gy, ga, gb});
}

void where(const float* cond, const float* a, const float* b, float* y, int64_t n) {
  for_each_index("where", n, Where{cond, a, b, y});
}

}  // namespace glimpse::cuda::detail
