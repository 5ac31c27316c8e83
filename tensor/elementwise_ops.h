// Every element-wise op, defined once: its name, its value, its derivative and the inputs on which
// the tests may check it. The CPU kernels (tensor/cpu/elementwise.cpp), the CUDA kernels
// (cuda/elementwise.cu) and the tests (parity, finite differences) all iterate these lists, so the
// formulas cannot drift apart between devices.
//
// Adding a unary op (say GELU) touches four files: a struct and a list entry here, its function in
// tensor/ops.h and tensor/ops_elementwise.cpp (one line each), and the independent reference
// formula in tests/test_cpu_kernels_elementwise.cpp.
//
// A unary op struct has
//   name                      the op's name in errors, graphs and debug output
//   value(x, p)               y = f(x; p); p is the scalar of the *Scalar ops (0 elsewhere)
//   grad(x, y, gy, p)         dL/dx from dL/dy = gy (given y too: several derivatives are cheapest
//                             from the output)
//   test_lo, test_hi          a range where value and grad are smooth enough for finite differences
//   test_param                the p used by the list-driven tests
//   kink_at_zero              the derivative jumps at 0: tests keep |x| away from it
// and optionally `array(xs)`, the same map as an Eigen array expression, which the CPU uses for
// SIMD transcendental functions (Eigen vectorises them without -ffast-math; std::exp does not).
// A binary op struct has name, value(a, b), grad_a(a, b, y, gy) and grad_b(a, b, y, gy).
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/host_device.h"

namespace glimpse {

// The lists. X(Enumerator, struct) for each op; the enum order is the list order.
#define GLIMPSE_UNARY_OPS(X) \
  X(Neg, NegOp)              \
  X(Exp, ExpOp)              \
  X(Log, LogOp)              \
  X(Tanh, TanhOp)            \
  X(Sigmoid, SigmoidOp)      \
  X(Relu, ReluOp)            \
  X(Sqrt, SqrtOp)            \
  X(Abs, AbsOp)              \
  X(Square, SquareOp)        \
  X(AddScalar, AddScalarOp)  \
  X(MulScalar, MulScalarOp)  \
  X(PowScalar, PowScalarOp)  \
  X(Gelu, GeluOp)

#define GLIMPSE_BINARY_OPS(X) \
  X(Add, AddOp)               \
  X(Sub, SubOp)               \
  X(Mul, MulOp)               \
  X(Div, DivOp)               \
  X(Pow, PowOp)

#define GLIMPSE_ENUMERATOR(Enumerator, Struct) Enumerator,
// Element-wise maps y = f(x; param). `param` is the scalar of the *Scalar ops and of PowScalar.
enum class UnaryOp : uint8_t { GLIMPSE_UNARY_OPS(GLIMPSE_ENUMERATOR) };
// Broadcasting binary ops. Pow is a^b per element as std::pow computes it (NaN for a negative base
// with a non-integer exponent).
enum class BinaryOp : uint8_t { GLIMPSE_BINARY_OPS(GLIMPSE_ENUMERATOR) };
#undef GLIMPSE_ENUMERATOR

// The C math functions for float and double, in host and device code alike (on the GPU the
// float overloads are CUDA's expf, logf, ...).
namespace math {
#if defined(__CUDA_ARCH__)
GLIMPSE_HOST_DEVICE inline float exp(float x) { return ::expf(x); }
GLIMPSE_HOST_DEVICE inline float log(float x) { return ::logf(x); }
GLIMPSE_HOST_DEVICE inline float tanh(float x) { return ::tanhf(x); }
GLIMPSE_HOST_DEVICE inline float sqrt(float x) { return ::sqrtf(x); }
GLIMPSE_HOST_DEVICE inline float abs(float x) { return ::fabsf(x); }
GLIMPSE_HOST_DEVICE inline float pow(float x, float p) { return ::powf(x, p); }
GLIMPSE_HOST_DEVICE inline float erf(float x) { return ::erff(x); }
#else
using std::abs;
using std::erf;
using std::exp;
using std::log;
using std::pow;
using std::sqrt;
using std::tanh;
#endif
}  // namespace math

// ---- unary ops ----

struct NegOp {
  static constexpr const char* name = "neg";
  static constexpr double test_lo = -3, test_hi = 3, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return -x; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T, T, T gy, T) { return -gy; }
};

struct ExpOp {
  static constexpr const char* name = "exp";
  static constexpr double test_lo = -5, test_hi = 5, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return math::exp(x); }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T, T y, T gy, T) { return gy * y; }
  template <class A> static auto array(const A& x) { return x.exp(); }
};

struct LogOp {
  static constexpr const char* name = "log";
  static constexpr double test_lo = 0.05, test_hi = 5, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return math::log(x); }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T x, T, T gy, T) { return gy / x; }
  template <class A> static auto array(const A& x) { return x.log(); }
};

struct TanhOp {
  static constexpr const char* name = "tanh";
  static constexpr double test_lo = -4, test_hi = 4, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return math::tanh(x); }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T, T y, T gy, T) { return gy * (T(1) - y * y); }
  template <class A> static auto array(const A& x) { return x.tanh(); }
};

// 1 / (1 + e^-x): exp overflows to inf for very negative x, and 1 / inf is the right 0.
struct SigmoidOp {
  static constexpr const char* name = "sigmoid";
  static constexpr double test_lo = -8, test_hi = 8, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return T(1) / (T(1) + math::exp(-x)); }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T, T y, T gy, T) { return gy * y * (T(1) - y); }
  template <class A> static auto array(const A& x) {
    return (typename A::Scalar(1) + (-x).exp()).inverse();
  }
};

// Written so that NaN propagates instead of silently becoming 0; the derivative at 0 is taken as
// 0, as TensorFlow does.
struct ReluOp {
  static constexpr const char* name = "relu";
  static constexpr double test_lo = -2, test_hi = 2, test_param = 0;
  static constexpr bool kink_at_zero = true;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return x < T(0) ? T(0) : x; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T x, T, T gy, T) { return x > T(0) ? gy : T(0); }
};

struct SqrtOp {
  static constexpr const char* name = "sqrt";
  static constexpr double test_lo = 0.01, test_hi = 9, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return math::sqrt(x); }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T, T y, T gy, T) { return gy * T(0.5) / y; }
  template <class A> static auto array(const A& x) { return x.sqrt(); }
};

struct AbsOp {
  static constexpr const char* name = "abs";
  static constexpr double test_lo = -3, test_hi = 3, test_param = 0;
  static constexpr bool kink_at_zero = true;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return math::abs(x); }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T x, T, T gy, T) {
    return x > T(0) ? gy : (x < T(0) ? -gy : T(0));
  }
};

struct SquareOp {
  static constexpr const char* name = "square";
  static constexpr double test_lo = -3, test_hi = 3, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) { return x * x; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T x, T, T gy, T) { return gy * T(2) * x; }
};

struct AddScalarOp {
  static constexpr const char* name = "add_scalar";
  static constexpr double test_lo = -3, test_hi = 3, test_param = 1.25;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T p) { return x + p; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T, T, T gy, T) { return gy; }
};

struct MulScalarOp {
  static constexpr const char* name = "mul_scalar";
  static constexpr double test_lo = -3, test_hi = 3, test_param = -0.7;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T p) { return x * p; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T, T, T gy, T p) { return gy * p; }
};

// x * x for p == 2 because it is exact (pow need not be).
struct PowScalarOp {
  static constexpr const char* name = "pow";
  static constexpr double test_lo = 0.05, test_hi = 4, test_param = 1.7;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T p) {
    return p == T(2) ? x * x : math::pow(x, p);
  }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T x, T, T gy, T p) {
    return gy * p * math::pow(x, p - T(1));
  }
};

// GELU as Keras (approximate=False) and PyTorch compute it by default: x * Phi(x), with Phi the
// standard normal CDF 0.5 (1 + erf(x / sqrt 2)); the derivative is Phi(x) + x phi(x).
struct GeluOp {
  static constexpr const char* name = "gelu";
  static constexpr double test_lo = -4, test_hi = 4, test_param = 0;
  static constexpr bool kink_at_zero = false;
  template <class T> GLIMPSE_HOST_DEVICE static T value(T x, T) {
    return T(0.5) * x * (T(1) + math::erf(x * T(0.70710678118654752)));
  }
  template <class T> GLIMPSE_HOST_DEVICE static T grad(T x, T, T gy, T) {
    const T cdf = T(0.5) * (T(1) + math::erf(x * T(0.70710678118654752)));
    const T pdf = T(0.39894228040143268) * math::exp(T(-0.5) * x * x);
    return gy * (cdf + x * pdf);
  }
};

// ---- binary ops ----
// Gradients are per element of the broadcast output; the ops layer sums them back to each
// operand's shape (sum_to_shape).

struct AddOp {
  static constexpr const char* name = "add";
  template <class T> GLIMPSE_HOST_DEVICE static T value(T a, T b) { return a + b; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_a(T, T, T, T gy) { return gy; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_b(T, T, T, T gy) { return gy; }
};

struct SubOp {
  static constexpr const char* name = "sub";
  template <class T> GLIMPSE_HOST_DEVICE static T value(T a, T b) { return a - b; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_a(T, T, T, T gy) { return gy; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_b(T, T, T, T gy) { return -gy; }
};

struct MulOp {
  static constexpr const char* name = "mul";
  template <class T> GLIMPSE_HOST_DEVICE static T value(T a, T b) { return a * b; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_a(T, T b, T, T gy) { return gy * b; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_b(T a, T, T, T gy) { return gy * a; }
};

// d(a/b)/db = -(a/b)/b = -y/b.
struct DivOp {
  static constexpr const char* name = "div";
  template <class T> GLIMPSE_HOST_DEVICE static T value(T a, T b) { return a / b; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_a(T, T b, T, T gy) { return gy / b; }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_b(T, T b, T y, T gy) { return -(gy * y / b); }
};

// The special cases follow PyTorch. b == 0: a^b is the constant 1, whose derivative in a is 0 even
// at a == 0 (where b * a^(b-1) would be 0 * inf = NaN). a == 0 with b >= 0: a^b log a -> 0 as
// a -> 0+, so 0 rather than 0 * -inf = NaN. A negative base has no real logarithm: NaN, as log
// gives.
struct PowOp {
  static constexpr const char* name = "pow";
  template <class T> GLIMPSE_HOST_DEVICE static T value(T a, T b) { return math::pow(a, b); }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_a(T a, T b, T, T gy) {
    return gy * (b == T(0) ? T(0) : b * math::pow(a, b - T(1)));
  }
  template <class T> GLIMPSE_HOST_DEVICE static T grad_b(T a, T b, T y, T gy) {
    return gy * (a == T(0) && b >= T(0) ? T(0) : y * math::log(a));
  }
};

// Calls fn(OpStruct{}) for the struct of `op`: the one switch over each list, generated from it.
// Host code: a backend picks the op's struct once per call, then runs a loop (CPU) or launches a
// kernel (CUDA) instantiated for that struct, so no element pays for a switch.
template <class Fn>
decltype(auto) visit_unary(UnaryOp op, Fn&& fn) {
  switch (op) {
#define GLIMPSE_CASE(Enumerator, Struct) \
  case UnaryOp::Enumerator: return fn(Struct{});
    GLIMPSE_UNARY_OPS(GLIMPSE_CASE)
#undef GLIMPSE_CASE
  }
  return fn(NegOp{});  // unreachable for a valid enumerator
}

template <class Fn>
decltype(auto) visit_binary(BinaryOp op, Fn&& fn) {
  switch (op) {
#define GLIMPSE_CASE(Enumerator, Struct) \
  case BinaryOp::Enumerator: return fn(Struct{});
    GLIMPSE_BINARY_OPS(GLIMPSE_CASE)
#undef GLIMPSE_CASE
  }
  return fn(AddOp{});  // unreachable for a valid enumerator
}

inline const char* op_name(UnaryOp op) {
  return visit_unary(op, [](auto f) { return decltype(f)::name; });
}
inline const char* op_name(BinaryOp op) {
  return visit_binary(op, [](auto f) { return decltype(f)::name; });
}

// Every enumerator of each list, in order (for the tests and the ONNX harness).
inline constexpr UnaryOp kAllUnaryOps[] = {
#define GLIMPSE_ITEM(Enumerator, Struct) UnaryOp::Enumerator,
    GLIMPSE_UNARY_OPS(GLIMPSE_ITEM)
#undef GLIMPSE_ITEM
};
inline constexpr BinaryOp kAllBinaryOps[] = {
#define GLIMPSE_ITEM(Enumerator, Struct) BinaryOp::Enumerator,
    GLIMPSE_BINARY_OPS(GLIMPSE_ITEM)
#undef GLIMPSE_ITEM
};

}  // namespace glimpse
