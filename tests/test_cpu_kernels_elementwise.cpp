// CPU backend: element-wise kernels — unary maps (values vs the C library, derivatives by finite
// differences), broadcasting binary ops vs a naive multi-index loop and their backward (finite
// differences; pow's conventions at zero and negative bases), where/fill/casts/axpy/copy_2d,
// dropout masks (statistics, determinism), Adam / SGD against values from TensorFlow, and Adam fused
// over many tensors (the kernel and nn::Adam's use of it) against the per-tensor update.
#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "nn/optim.h"
#include "tensor/counter_rng.h"
#include "tensor/ops.h"
#include "test_cpu_kernels_util.h"
#include "tensor/parallel.h"

using namespace glimpse;
using namespace glimpse::test;

namespace {

// The reference formulas, written independently of tensor/elementwise_ops.h: the kernels take
// theirs from that list, and these tests iterate it, so a new op without a reference here fails.
double reference_unary(UnaryOp op, double x, double p) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case UnaryOp::Relu: return x > 0 ? x : 0.0;
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::AddScalar: return x + p;
    case UnaryOp::MulScalar: return x * p;
    case UnaryOp::PowScalar: return std::pow(x, p);
    case UnaryOp::Gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    default: FAIL("no reference formula for unary op " << op_name(op));
  }
  return 0;
}

// Inputs inside the test range the list gives each op, away from a kink at 0 (relu, abs).
std::vector<double> unary_inputs(UnaryOp op, int64_t n, uint32_t seed) {
  return visit_unary(op, [&](auto f) {
    using Op = decltype(f);
    auto x = random_vector(n, seed, Op::test_lo, Op::test_hi);
    if (Op::kink_at_zero) {
      for (auto& v : x) {
        if (std::abs(v) < 0.05) v = 0.3;
      }
    }
    return x;
  });
}

}  // namespace

TEST_CASE("unary: values match the C library (float and double, parallel sizes)") {
  const double param = 1.7;
  for (UnaryOp op : kAllUnaryOps) {
    for (int64_t n : {int64_t(1), int64_t(37), int64_t(100003)}) {
      const auto xd = unary_inputs(op, n, 11);
      std::vector<double> yd(n);
      kd().unary(op, xd.data(), yd.data(), n, param);
      std::vector<float> xf(xd.begin(), xd.end()), yf(n);
      kf().unary(op, xf.data(), yf.data(), n, float(param));
      double worst_d = 0, worst_f = 0;  // relative errors
      for (int64_t i = 0; i < n; ++i) {
        const double expected_d = reference_unary(op, xd[i], param);
        const double expected_f = reference_unary(op, double(xf[i]), double(float(param)));
        worst_d = std::max(worst_d, std::abs(yd[i] - expected_d) / (1 + std::abs(expected_d)));
        worst_f = std::max(worst_f, std::abs(yf[i] - expected_f) / (1 + std::abs(expected_f)));
      }
      INFO("op " << op_name(op) << " n " << n);
      CHECK(worst_d <= 1e-14);
      CHECK(worst_f <= 1e-6);
    }
  }
}

TEST_CASE("unary: edge values (relu at 0 and NaN, sigmoid saturation, exp overflow)") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {0.0f, -0.0f, nan, -100.0f, 100.0f}, y(5);
  kf().unary(UnaryOp::Relu, x.data(), y.data(), 5, 0.0f);
  CHECK(y[0] == 0.0f);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 0.0f);
  kf().unary(UnaryOp::Sigmoid, x.data(), y.data(), 5, 0.0f);
  CHECK(y[3] == doctest::Approx(0.0f));
  CHECK(y[4] == 1.0f);
  kf().unary(UnaryOp::Exp, x.data(), y.data(), 5, 0.0f);
  CHECK(std::isinf(y[4]));
  // Relu's derivative at exactly 0 is 0.
  std::vector<float> gy(5, 1.0f), gx(5);
  kf().unary_backward(UnaryOp::Relu, x.data(), y.data(), gy.data(), gx.data(), 5, 0.0f);
  CHECK(gx[0] == 0.0f);
  CHECK(gx[4] == 1.0f);
}

TEST_CASE("unary_backward: central finite differences in double") {
  for (double param : {1.7, 3.0, 0.5}) {
    for (UnaryOp op : kAllUnaryOps) {
      const int64_t n = 23;
      auto x = unary_inputs(op, n, 12);
      const auto weights = random_vector(n, 13);
      std::vector<double> y(n), gx(n);
      kd().unary(op, x.data(), y.data(), n, param);
      kd().unary_backward(op, x.data(), y.data(), weights.data(), gx.data(), n, param);
      std::vector<double> scratch(n);
      check_gradient("unary", x, gx, [&] {
        kd().unary(op, x.data(), scratch.data(), n, param);
        return dot(scratch, weights);
      });
    }
  }
}

namespace {

// A random broadcasting case: output shape plus, per input, which axes are broadcast.
struct BroadcastCase {
  BroadcastLayout layout;
  int64_t a_size = 1, b_size = 1, y_size = 1;
};

BroadcastCase make_broadcast(std::vector<int64_t> shape, std::vector<bool> a_broadcast,
                             std::vector<bool> b_broadcast) {
  BroadcastCase c;
  c.layout.rank = int(shape.size());
  int64_t a_stride = 1, b_stride = 1;
  for (int d = c.layout.rank - 1; d >= 0; --d) {
    c.layout.shape[d] = shape[d];
    c.y_size *= shape[d];
    c.layout.a_strides[d] = a_broadcast[d] ? 0 : a_stride;
    c.layout.b_strides[d] = b_broadcast[d] ? 0 : b_stride;
    if (!a_broadcast[d]) a_stride *= shape[d];
    if (!b_broadcast[d]) b_stride *= shape[d];
  }
  c.a_size = a_stride;
  c.b_size = b_stride;
  return c;
}

double apply_binary(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return std::pow(a, b);
    default: FAIL("no reference formula for binary op " << op_name(op));
  }
  return 0;
}

template <class T>
void check_binary(const Kernels<T>& k, const BroadcastCase& c, BinaryOp op, uint32_t seed) {
  const auto a = random_vector<T>(c.a_size, seed, 0.5, 2.0);
  const auto b = random_vector<T>(c.b_size, seed + 1, 0.5, 2.0);
  std::vector<T> y(c.y_size), expected(c.y_size);
  const BroadcastLayout& l = c.layout;
  for (int64_t i = 0; i < c.y_size; ++i) {
    int64_t rest = i, ia = 0, ib = 0;
    for (int d = l.rank - 1; d >= 0; --d) {
      const int64_t index = rest % l.shape[d];
      rest /= l.shape[d];
      ia += index * l.a_strides[d];
      ib += index * l.b_strides[d];
    }
    expected[i] = static_cast<T>(apply_binary(op, a[ia], b[ib]));
  }
  k.binary(op, a.data(), b.data(), y.data(), l);
  CHECK(max_abs_diff(y, expected) <= 1e-6);
}

}  // namespace

TEST_CASE("binary: broadcasting matches a naive multi-index loop") {
  std::vector<BroadcastCase> cases = {
      make_broadcast({}, {}, {}),                                          // scalars
      make_broadcast({300, 257}, {false, false}, {false, false}),          // same shape
      make_broadcast({300, 257}, {false, false}, {true, true}),            // b scalar
      make_broadcast({300, 257}, {true, true}, {false, false}),            // a scalar
      make_broadcast({300, 257}, {false, false}, {true, false}),           // bias add
      make_broadcast({300, 257}, {true, false}, {false, false}),           // [cols] - [rows, cols]
      make_broadcast({300, 257}, {false, false}, {false, true}),           // [rows, 1]
      make_broadcast({64, 50, 33}, {false, true, false}, {true, false, false}),
      make_broadcast({2, 1, 3, 4}, {false, false, true, false}, {true, false, false, true}),
      make_broadcast({4, 5, 6, 7, 3}, {false, true, false, true, false}, {true, false, true, false, true}),
  };
  // Strided views: a transposed [7, 5] read as [5, 7], and every other element of b.
  BroadcastCase transposed = make_broadcast({5, 7}, {false, false}, {false, false});
  transposed.layout.a_strides[0] = 1;
  transposed.layout.a_strides[1] = 5;
  transposed.layout.b_strides[0] = 14;
  transposed.layout.b_strides[1] = 2;
  transposed.b_size = 70;
  cases.push_back(transposed);
  std::mt19937 gen(99);  // plus random shapes and broadcast patterns
  for (int trial = 0; trial < 40; ++trial) {
    const int rank = 1 + int(gen() % 5);
    std::vector<int64_t> shape(rank);
    std::vector<bool> ab(rank), bb(rank);
    for (int d = 0; d < rank; ++d) {
      shape[d] = 1 + int64_t(gen() % 6);
      ab[d] = gen() % 3 == 0;
      bb[d] = gen() % 3 == 0;
    }
    cases.push_back(make_broadcast(shape, ab, bb));
  }
  uint32_t seed = 1;
  for (const auto& c : cases) {
    for (BinaryOp op : kAllBinaryOps) {
      INFO("rank " << c.layout.rank << " size " << c.y_size << " op " << op_name(op));
      check_binary(kf(), c, op, seed);
      check_binary(kd(), c, op, seed);
      ++seed;
    }
  }
}

TEST_CASE("binary pow: std::pow's values at negative and zero bases") {
  // Negative bases with integer exponents are defined; with a fractional exponent they are NaN.
  const std::vector<double> a = {-2.0, -2.0, -0.5, 0.0, 0.0, 0.0, 3.0, -3.0};
  const std::vector<double> b = {3.0, 2.0, -1.0, 0.0, 2.5, -1.0, 0.5, 0.5};
  const BroadcastCase c = make_broadcast({8}, {false}, {false});
  std::vector<double> y(8);
  kd().binary(BinaryOp::Pow, a.data(), b.data(), y.data(), c.layout);
  CHECK(y[0] == -8.0);
  CHECK(y[1] == 4.0);
  CHECK(y[2] == -2.0);
  CHECK(y[3] == 1.0);
  CHECK(y[4] == 0.0);
  CHECK(y[5] == std::numeric_limits<double>::infinity());
  CHECK(y[6] == doctest::Approx(std::sqrt(3.0)));
  CHECK(std::isnan(y[7]));
  std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), yf(8);
  kf().binary(BinaryOp::Pow, af.data(), bf.data(), yf.data(), c.layout);
  for (int i = 0; i < 8; ++i) {
    INFO("element " << i);
    if (std::isnan(y[i])) {
      CHECK(std::isnan(yf[i]));
    } else if (std::isinf(y[i])) {
      CHECK(double(yf[i]) == y[i]);
    } else {
      CHECK(double(yf[i]) == doctest::Approx(y[i]).epsilon(1e-6));
    }
  }
}

namespace {

// Sums output-shaped gradients back onto an input's storage through its broadcast strides.
std::vector<double> sum_to_operand(const std::vector<double>& g, const BroadcastLayout& l,
                                   const int64_t* strides, int64_t size) {
  std::vector<double> out(size, 0.0);
  for (int64_t i = 0; i < int64_t(g.size()); ++i) {
    int64_t rest = i, offset = 0;
    for (int d = l.rank - 1; d >= 0; --d) {
      offset += (rest % l.shape[d]) * strides[d];
      rest /= l.shape[d];
    }
    out[offset] += g[i];
  }
  return out;
}

}  // namespace

TEST_CASE("binary_backward: finite differences in double for every binary op, broadcasting both ways") {
  const std::vector<BroadcastCase> cases = {
      make_broadcast({6}, {false}, {false}),
      make_broadcast({4, 5}, {false, false}, {true, true}),            // b a scalar
      make_broadcast({4, 5}, {true, true}, {false, false}),            // a a scalar
      make_broadcast({3, 4, 5}, {false, true, false}, {true, false, true}),
      make_broadcast({200, 300}, {false, false}, {true, false}),       // several threads
  };
  uint32_t seed = 40;
  for (BinaryOp op : kAllBinaryOps) {
    for (const auto& c : cases) {
      INFO(op_name(op) << " rank " << c.layout.rank << " size " << c.y_size);
      auto a = random_vector<double>(c.a_size, seed++, 0.3, 2.0);  // pow's log(a) needs a > 0
      // Exponents of both signs for pow; divisors away from 0 for div.
      auto b = random_vector<double>(c.b_size, seed++, op == BinaryOp::Pow ? -2.0 : 0.5, 2.0);
      const auto weights = random_vector<double>(c.y_size, seed++);
      std::vector<double> y(c.y_size), ga(c.y_size), gb(c.y_size), scratch(c.y_size);
      kd().binary(op, a.data(), b.data(), y.data(), c.layout);
      kd().binary_backward(op, a.data(), b.data(), y.data(), weights.data(), ga.data(), gb.data(),
                           c.layout);
      auto loss = [&] {
        kd().binary(op, a.data(), b.data(), scratch.data(), c.layout);
        return dot(scratch, weights);
      };
      if (c.y_size > 1000) {  // finite differences would take long; compare with a plain loop
        if (op != BinaryOp::Pow) continue;
        for (int64_t i = 0; i < c.y_size; ++i) {
          const int64_t row = i / 300, col = i % 300;
          const double av = a[row * 300 + col], bv = b[col];
          REQUIRE(ga[i] == doctest::Approx(weights[i] * bv * std::pow(av, bv - 1)));
          REQUIRE(gb[i] == doctest::Approx(weights[i] * std::pow(av, bv) * std::log(av)));
        }
        continue;
      }
      check_gradient("left operand", a, sum_to_operand(ga, c.layout, c.layout.a_strides, c.a_size),
                     loss);
      check_gradient("right operand", b, sum_to_operand(gb, c.layout, c.layout.b_strides, c.b_size),
                     loss);
      // Either output may be skipped; the other is unchanged.
      std::vector<double> only_b(c.y_size);
      kd().binary_backward(op, a.data(), b.data(), y.data(), weights.data(), nullptr, only_b.data(),
                           c.layout);
      CHECK(only_b == gb);
    }
  }
}

TEST_CASE("binary_backward of pow: conventions at zero and negative bases (as PyTorch)") {
  //                         0^0  0^2  0^-1   (-2)^3  (-2)^0.5  2^0  0^0.5
  const std::vector<double> a = {0.0, 0.0, 0.0, -2.0, -2.0, 2.0, 0.0};
  const std::vector<double> b = {0.0, 2.0, -1.0, 3.0, 0.5, 0.0, 0.5};
  const int64_t n = 7;
  const BroadcastCase c = make_broadcast({n}, {false}, {false});
  std::vector<double> y(n), ga(n), gb(n), ones(n, 1.0);
  kd().binary(BinaryOp::Pow, a.data(), b.data(), y.data(), c.layout);
  kd().binary_backward(BinaryOp::Pow, a.data(), b.data(), y.data(), ones.data(), ga.data(),
                       gb.data(), c.layout);
  const double inf = std::numeric_limits<double>::infinity();
  // d/da: 0 where the exponent is 0 (a^0 is constant), otherwise b a^(b-1).
  CHECK(ga[0] == 0.0);
  CHECK(ga[1] == 0.0);
  CHECK(ga[2] == -inf);
  CHECK(ga[3] == 12.0);
  CHECK(std::isnan(ga[4]));
  CHECK(ga[5] == 0.0);
  CHECK(ga[6] == inf);
  // d/db: 0 at a == 0 with b >= 0; a^b log a otherwise, NaN for a negative base.
  CHECK(gb[0] == 0.0);
  CHECK(gb[1] == 0.0);
  CHECK(gb[2] == -inf);
  CHECK(std::isnan(gb[3]));
  CHECK(std::isnan(gb[4]));
  CHECK(gb[5] == doctest::Approx(std::log(2.0)));
  CHECK(gb[6] == 0.0);
}

TEST_CASE("where, fill, casts, axpy, copy_2d") {
  const int64_t n = 70001;
  auto cond = random_vector<float>(n, 21);
  for (auto& c : cond) c = c > 0 ? 1.0f : 0.0f;
  const auto a = random_vector<float>(n, 22), b = random_vector<float>(n, 23);
  std::vector<float> y(n);
  kf().where(cond.data(), a.data(), b.data(), y.data(), n);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) mismatches += y[i] != (cond[i] != 0 ? a[i] : b[i]);
  CHECK(mismatches == 0);

  kf().fill(y.data(), n, 2.5f);
  CHECK(std::count(y.begin(), y.end(), 2.5f) == n);

  std::vector<float> x = {1.9f, -1.9f, 0.0f, -0.5f, 3e9f, -3e9f, std::nanf("")};
  std::vector<int32_t> ids(x.size());
  kf().cast_to_i32(x.data(), ids.data(), int64_t(x.size()));
  CHECK(ids == std::vector<int32_t>{1, -1, 0, 0, INT32_MAX, INT32_MIN, 0});
  std::vector<double> back(ids.size());
  kd().cast_from_i32(ids.data(), back.data(), int64_t(ids.size()));
  CHECK(back[1] == -1.0);
  CHECK(back[4] == double(INT32_MAX));

  auto yy = random_vector<double>(n, 24);
  const auto xx = random_vector<double>(n, 25);
  auto expected = yy;
  for (int64_t i = 0; i < n; ++i) expected[i] += -0.25 * xx[i];
  kd().axpy(n, -0.25, xx.data(), yy.data());
  CHECK(max_abs_diff(yy, expected) == 0.0);

  // Copy a 3 x 4 block out of a 5 x 7 matrix into a 3 x 6 one; other cells untouched.
  std::vector<float> src(35), dst(18, -1.0f);
  for (int i = 0; i < 35; ++i) src[i] = float(i);
  kf().copy_2d(src.data() + 7 + 2, 7, dst.data() + 1, 6, 3, 4);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 6; ++c) {
      const bool inside = c >= 1 && c < 5;
      CHECK(dst[r * 6 + c] == (inside ? src[(r + 1) * 7 + 2 + (c - 1)] : -1.0f));
    }
  }
}

TEST_CASE("counter_uniform: range and uniformity") {
  constexpr int kBuckets = 16;
  constexpr int64_t kDraws = 160000;
  int64_t counts[kBuckets] = {};
  int64_t out_of_range = 0;
  for (int64_t i = 0; i < kDraws; ++i) {
    const float u = counter_uniform(1234, uint64_t(i));
    if (u < 0.0f || u >= 1.0f) {
      ++out_of_range;
      continue;
    }
    ++counts[int(u * kBuckets)];
  }
  CHECK(out_of_range == 0);
  double chi2 = 0;
  const double expected = double(kDraws) / kBuckets;
  for (int64_t c : counts) chi2 += (c - expected) * (c - expected) / expected;
  CHECK(chi2 < 45.0);  // 15 degrees of freedom: P(chi2 > 45) is about 1e-4
  // Seed 0 gives the SplitMix64 reference sequence from state 0 (Vigna's splitmix64.c).
  CHECK(counter_hash(0, 0) == 0xE220A8397B1DCDAFull);
  CHECK(counter_hash(0, 1) == 0x6E789E6AA1B965F4ull);
  CHECK(counter_hash(0, 2) == 0x06C45D188009454Full);
  CHECK(counter_uniform(0, 0) == float(0xE220A8) / 16777216.0f);
  CHECK(counter_hash(1, 0) != counter_hash(2, 0));
  CHECK(counter_hash(1, 0) != counter_hash(1, 1));
}

TEST_CASE("dropout_mask: keep rate, scale, determinism, offsets, thread independence") {
  const int64_t n = 200000;
  const float p = 0.3f;
  std::vector<float> mask(n), again(n);
  kf().dropout_mask(mask.data(), n, p, 42, 0);
  int64_t dropped = 0;
  double total = 0;
  int64_t wrong_scale = 0;
  for (float m : mask) {
    if (m == 0.0f) {
      ++dropped;
    } else {
      wrong_scale += std::abs(m - 1.0 / 0.7) > 1e-6;
    }
    total += m;
  }
  CHECK(wrong_scale == 0);
  // Binomial(200000, 0.3): standard deviation ~205 drops.
  CHECK(std::abs(double(dropped) - 0.3 * n) < 1200);
  CHECK(total / n == doctest::Approx(1.0).epsilon(0.01));

  kf().dropout_mask(again.data(), n, p, 42, 0);
  CHECK(again == mask);
  kf().dropout_mask(again.data(), n, p, 43, 0);
  CHECK(again != mask);
  // Element i of the stream at offset k is element k + i of the stream at offset 0.
  kf().dropout_mask(again.data(), n - 1000, p, 42, 1000);
  CHECK(std::equal(again.begin(), again.begin() + (n - 1000), mask.begin() + 1000));
  // The draw does not depend on the precision or on the number of threads.
  std::vector<double> mask_d(n);
  kd().dropout_mask(mask_d.data(), n, double(p), 42, 0);
  int64_t disagreements = 0;
  for (int64_t i = 0; i < n; ++i) disagreements += (mask_d[i] == 0) != (mask[i] == 0);
  CHECK(disagreements == 0);
  const int threads = glimpse::parallel::num_threads();
  glimpse::parallel::set_num_threads(1);
  kf().dropout_mask(again.data(), n, p, 42, 0);
  glimpse::parallel::set_num_threads(threads);
  CHECK(again == mask);
  // p = 0 keeps everything at scale 1; p = 1 drops everything.
  kf().dropout_mask(again.data(), 1000, 0.0f, 5, 0);
  CHECK(std::count(again.begin(), again.begin() + 1000, 1.0f) == 1000);
  kf().dropout_mask(again.data(), 1000, 1.0f, 5, 0);
  CHECK(std::count(again.begin(), again.begin() + 1000, 0.0f) == 1000);
}

// Expected values from TensorFlow 2.21 / Keras 3:
//   w = tf.Variable([1.0, -0.5, 2.0]) (float64); opt = tf.keras.optimizers.Adam(0.01)
//   (beta_1 0.9, beta_2 0.999, epsilon 1e-7), then SGD(0.1, momentum=0.9, nesterov=False/True);
//   opt.apply_gradients with g = [0.5, -0.25, 0.0] then [-0.3, 0.1, 2.0].
// Keras keeps the learning rate as a float32 variable, hence the ~1e-9 tolerances.
TEST_CASE("adam_update: two Keras steps") {
  std::vector<double> w = {1.0, -0.5, 2.0}, m(3, 0.0), v(3, 0.0);
  const std::vector<std::vector<double>> grads = {{0.5, -0.25, 0.0}, {-0.3, 0.1, 2.0}};
  const std::vector<std::vector<double>> expected = {
      {0.9900001302256389, -0.4900001934695685, 2.0},
      {0.9880851730590157, -0.48654419869104637, 1.9925586932556911}};
  const double lr = 0.01, b1 = 0.9, b2 = 0.999;
  for (int t = 1; t <= 2; ++t) {
    const double lr_t = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    kd().adam_update(w.data(), grads[t - 1].data(), m.data(), v.data(), 3, lr_t, b1, b2, 1e-7);
    for (int i = 0; i < 3; ++i) CHECK(w[i] == doctest::Approx(expected[t - 1][i]).epsilon(1e-7));
  }
  CHECK(m[2] == doctest::Approx(0.2));  // 0.9 * 0 + 0.1 * 2
  CHECK(v[0] == doctest::Approx(0.999 * 0.001 * 0.25 + 0.001 * 0.09));
}

TEST_CASE("sgd_update: Keras momentum and nesterov, two steps") {
  const std::vector<std::vector<double>> grads = {{0.5, -0.25, 0.0}, {-0.3, 0.1, 2.0}};
  for (bool nesterov : {false, true}) {
    std::vector<double> w = {1.0, -0.5, 2.0}, vel(3, 0.0);
    for (const auto& g : grads) kd().sgd_update(w.data(), g.data(), vel.data(), 3, 0.1, 0.9, nesterov);
    const std::vector<double> expected =
        nesterov ? std::vector<double>{0.9215000014528633, -0.4512500007040799, 1.6199999991059304}
                 : std::vector<double>{0.9350000002235175, -0.4625000000372529, 1.7999999970197678};
    for (int i = 0; i < 3; ++i) CHECK(w[i] == doctest::Approx(expected[i]).epsilon(1e-8));
  }
  std::vector<float> w = {1.0f}, g = {0.5f};
  kf().sgd_update(w.data(), g.data(), nullptr, 1, 0.1f, 0.0f, false);  // no momentum buffer
  CHECK(w[0] == doctest::Approx(0.95f));
}

template <class T>
const Kernels<T>& kernels_of() {
  if constexpr (std::is_same_v<T, float>) {
    return kf();
  } else {
    return kd();
  }
}

// Adam fused over many tensors must be the per-tensor update exactly: same arithmetic per element,
// only the loop around it differs. Odd sizes, empty and one-element tensors, and tensors long
// enough to be split into several chunks across threads.
template <class T>
void check_adam_multi_matches_per_tensor() {
  const std::vector<int64_t> sizes = {5, 0, 1, 70001, 16384, 3, 0, 16385, 33, 1};
  const size_t count = sizes.size();
  std::vector<std::vector<T>> w1(count), m1(count), v1(count);
  for (size_t k = 0; k < count; ++k) {
    w1[k] = random_vector<T>(sizes[k], 100 + static_cast<uint32_t>(k));
    m1[k] = std::vector<T>(sizes[k], T(0));
    v1[k] = std::vector<T>(sizes[k], T(0));
  }
  auto w2 = w1, m2 = m1, v2 = v1;
  const Kernels<T>& kernels = kernels_of<T>();
  const T b1 = T(0.9), b2 = T(0.999), eps = T(1e-7);
  for (int step = 1; step <= 3; ++step) {
    const T lr_t = static_cast<T>(0.01 * std::sqrt(1 - std::pow(0.999, step)) / (1 - std::pow(0.9, step)));
    std::vector<std::vector<T>> grads(count);
    for (size_t k = 0; k < count; ++k) {
      grads[k] = random_vector<T>(sizes[k], 1000 * step + static_cast<uint32_t>(k), -2.0, 2.0);
      kernels.adam_update(w1[k].data(), grads[k].data(), m1[k].data(), v1[k].data(), sizes[k],
                          lr_t, b1, b2, eps);
    }
    std::vector<T*> w(count), m(count), v(count);
    std::vector<const T*> g(count);
    for (size_t k = 0; k < count; ++k) {
      w[k] = w2[k].data();
      g[k] = grads[k].data();
      m[k] = m2[k].data();
      v[k] = v2[k].data();
    }
    kernels.adam_update_multi(w.data(), g.data(), m.data(), v.data(), sizes.data(),
                              static_cast<int64_t>(count), lr_t, b1, b2, eps);
  }
  for (size_t k = 0; k < count; ++k) {
    INFO("tensor " << k << " of " << sizes[k] << " elements");
    CHECK(w2[k] == w1[k]);  // bit-identical, not merely close
    CHECK(m2[k] == m1[k]);
    CHECK(v2[k] == v1[k]);
  }
  // No tensors at all: nothing to do, and the arrays are never read.
  kernels.adam_update_multi(nullptr, nullptr, nullptr, nullptr, nullptr, 0, T(0.1), b1, b2, eps);
}

TEST_CASE("adam_update_multi equals adam_update tensor by tensor, bit for bit (float, double)") {
  check_adam_multi_matches_per_tensor<float>();
  check_adam_multi_matches_per_tensor<double>();
}

// nn::Adam takes the fused path when every parameter shares a device and dtype, and must then
// give exactly what adam_update_ gives parameter by parameter; a parameter without a gradient is
// left alone, and mixed dtypes fall back to the per-tensor path.
TEST_CASE("nn::Adam::step: fused over all parameters equals adam_update_ per parameter") {
  for (bool mixed_dtypes : {false, true}) {
    INFO("mixed dtypes: " << mixed_dtypes);
    const std::vector<Shape> shapes = {{7, 13}, {1}, {40001}, {5}, {3, 3}, {0}};
    std::vector<Tensor> fused, manual, m, v;
    std::vector<nn::NamedTensor> named;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const int64_t n = shape_numel(shapes[i]);
      const DType dtype = mixed_dtypes && i == 3 ? DType::F64 : DType::F32;
      Tensor w = Tensor::from_vector(random_vector<double>(n, 7 + static_cast<uint32_t>(i)), shapes[i]).to(dtype);
      fused.push_back(w.clone().detach());
      manual.push_back(w.clone().detach());
      m.push_back(Tensor::zeros(shapes[i], dtype));
      v.push_back(Tensor::zeros(shapes[i], dtype));
    }
    for (size_t i = 0; i < shapes.size(); ++i)
      named.push_back({"p" + std::to_string(i), &fused[i], false});
    nn::Adam adam(named, std::make_shared<nn::ConstantLr>(0.01));
    for (int step = 1; step <= 3; ++step) {
      adam.zero_grad();
      const double lr_t = 0.01 * std::sqrt(1.0 - std::pow(adam.beta2, step)) /
                          (1.0 - std::pow(adam.beta1, step));
      for (size_t i = 0; i < shapes.size(); ++i) {
        if (i == 4) continue;  // no gradient: skipped by the optimizer
        const int64_t n = shape_numel(shapes[i]);
        Tensor g = Tensor::from_vector(random_vector<double>(n, 50 * step + static_cast<uint32_t>(i)),
                                       shapes[i]).to(fused[i].dtype());
        fused[i].set_requires_grad(true);
        fused[i].backward(g);
        adam_update_(manual[i], g, m[i], v[i], lr_t, adam.beta1, adam.beta2, adam.epsilon);
      }
      adam.step();
    }
    for (size_t i = 0; i < shapes.size(); ++i) {
      INFO("parameter " << i);
      CHECK(fused[i].to_vector_f64() == manual[i].to_vector_f64());
    }
    const std::vector<nn::NamedTensor> state = adam.state();
    REQUIRE(state.size() == 2 * shapes.size());
    for (size_t i = 0; i < shapes.size(); ++i) {
      CHECK(state[2 * i].tensor->to_vector_f64() == m[i].to_vector_f64());
      CHECK(state[2 * i + 1].tensor->to_vector_f64() == v[i].to_vector_f64());
    }
  }
}
