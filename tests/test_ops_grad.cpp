// Every differentiable op against central finite differences, in double precision, on random
// shapes (broadcasting included).
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "support/gradcheck.h"
#include "tensor/ops.h"

using namespace glimpse;
using glimpse::testing::check_gradients;
using glimpse::testing::random_tensor;

namespace {
std::mt19937 rng(12345);
int64_t rdim(int lo = 1, int hi = 5) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
}  // namespace

TEST_CASE("binary ops with broadcasting") {
  for (int trial = 0; trial < 4; ++trial) {
    const int64_t a = rdim(), b = rdim(), c = rdim();
    std::vector<std::pair<Shape, Shape>> cases = {
        {{a, b, c}, {a, b, c}}, {{a, b, c}, {c}}, {{a, 1, c}, {b, 1}}, {{a, b, c}, {}},
        {{1, b, 1}, {a, 1, c}}};
    for (auto& [sa, sb] : cases) {
      Tensor x = random_tensor(sa, rng), y = random_tensor(sb, rng, 0.5, 2.0);
      check_gradients([](auto& in) { return add(in[0], in[1]); }, {x, y});
      check_gradients([](auto& in) { return sub(in[0], in[1]); }, {x, y});
      check_gradients([](auto& in) { return mul(in[0], in[1]); }, {x, y});
      check_gradients([](auto& in) { return div(in[0], in[1]); }, {x, y});
    }
  }
}

TEST_CASE("pow with broadcasting, in the base and the exponent") {
  for (int trial = 0; trial < 3; ++trial) {
    const int64_t a = rdim(), b = rdim(), c = rdim();
    std::vector<std::pair<Shape, Shape>> cases = {
        {{a, b, c}, {a, b, c}}, {{a, b, c}, {c}}, {{a, 1, c}, {b, 1}}, {{a, b, c}, {}},
        {{}, {a, b, c}}, {{1, b, 1}, {a, 1, c}}};
    for (auto& [sa, sb] : cases) {
      // Positive bases: the exponent's gradient a^b log a needs log a.
      Tensor base = random_tensor(sa, rng, 0.3, 2.0), exponent = random_tensor(sb, rng, -2.0, 2.0);
      check_gradients([](auto& in) { return pow(in[0], in[1]); }, {base, exponent});
    }
  }
  // A negative base with integer exponents: differentiable in the base (the exponent's
  // gradient is NaN there and is not requested).
  Tensor base = random_tensor({3, 4}, rng, -2.0, -0.3);
  Tensor exponent = Tensor::from_vector(std::vector<double>{2, 3, -1, 0}, {4});
  check_gradients([exponent](auto& in) { return pow(in[0], exponent); }, {base});
  // Through a transposed (non-contiguous) view.
  Tensor square = random_tensor({3, 3}, rng, 0.5, 1.5), powers = random_tensor({3, 3}, rng);
  check_gradients([](auto& in) { return pow(transpose(in[0], 0, 1), in[1]); }, {square, powers});
}

TEST_CASE("pow at a zero base follows PyTorch: 0 where the exponent is 0 / non-negative") {
  Tensor base = Tensor::from_vector(std::vector<double>{0, 0, 2, 0}, {4}).set_requires_grad();
  Tensor exponent =
      Tensor::from_vector(std::vector<double>{0, 2, 0, 3}, {4}).set_requires_grad();
  Tensor y = pow(base, exponent);
  CHECK(y.to_vector_f64() == std::vector<double>{1, 0, 1, 0});
  sum(y).backward();
  CHECK(base.grad().to_vector_f64() == std::vector<double>{0, 0, 0, 0});
  const std::vector<double> ge = exponent.grad().to_vector_f64();
  CHECK(ge[0] == 0.0);
  CHECK(ge[1] == 0.0);
  CHECK(ge[2] == doctest::Approx(std::log(2.0)));
  CHECK(ge[3] == 0.0);
}

TEST_CASE("unary and scalar ops") {
  const Shape s{rdim(), rdim(), rdim()};
  Tensor x = random_tensor(s, rng);
  Tensor pos = random_tensor(s, rng, 0.2, 2.0);
  // Keep relu/abs inputs away from the kink at 0, where finite differences are meaningless:
  // magnitudes in [0.1, 1] with random signs (relu(u) != 0 exactly when u > 0).
  Tensor magnitude = random_tensor(s, rng, 0.1, 1.0);
  Tensor positive = relu(random_tensor(s, rng));
  Tensor kinked = where(positive, magnitude, neg(magnitude));
  check_gradients([](auto& in) { return neg(in[0]); }, {x});
  check_gradients([](auto& in) { return exp(in[0]); }, {x});
  check_gradients([](auto& in) { return log(in[0]); }, {pos});
  check_gradients([](auto& in) { return tanh(in[0]); }, {x});
  check_gradients([](auto& in) { return sigmoid(in[0]); }, {x});
  check_gradients([](auto& in) { return relu(in[0]); }, {kinked});
  check_gradients([](auto& in) { return abs(in[0]); }, {kinked});
  check_gradients([](auto& in) { return sqrt(in[0]); }, {pos});
  check_gradients([](auto& in) { return square(in[0]); }, {x});
  check_gradients([](auto& in) { return pow_scalar(in[0], 2.5); }, {pos});
  check_gradients([](auto& in) { return add_scalar(in[0], 3.0); }, {x});
  check_gradients([](auto& in) { return mul_scalar(in[0], -1.7); }, {x});
}

TEST_CASE("every listed unary op through unary(): finite differences on its test range") {
  // tensor/elementwise_ops.h gives each op a range and whether it has a kink at 0; a new op gets
  // its gradient checked here without another line in this file.
  const Shape s{rdim(), rdim()};
  for (UnaryOp op : kAllUnaryOps) {
    visit_unary(op, [&](auto f) {
      using Op = decltype(f);
      INFO(Op::name);
      Tensor x = random_tensor(s, rng, Op::test_lo, Op::test_hi);
      if (Op::kink_at_zero) {  // magnitudes in [0.1, 1] with random signs
        Tensor magnitude = random_tensor(s, rng, 0.1, 1.0);
        x = where(relu(random_tensor(s, rng)), magnitude, neg(magnitude));
      }
      check_gradients([op](auto& in) { return unary(op, in[0], Op::test_param); }, {x});
    });
  }
}

TEST_CASE("where and masked_fill") {
  Tensor cond = Tensor::from_vector(std::vector<double>{1, 0, 0, 1, 1, 0}, {2, 3});
  Tensor a = random_tensor({2, 3}, rng), b = random_tensor({3}, rng);
  check_gradients([cond](auto& in) { return where(cond, in[0], in[1]); }, {a, b});
  check_gradients([cond](auto& in) { return masked_fill(in[0], cond, -5.0); }, {a});
}

TEST_CASE("reductions") {
  const Shape s{rdim(2, 4), rdim(2, 4), rdim(2, 4)};
  Tensor x = random_tensor(s, rng);
  check_gradients([](auto& in) { return sum(in[0]); }, {x});
  check_gradients([](auto& in) { return sum(in[0], {1}); }, {x});
  check_gradients([](auto& in) { return sum(in[0], {0, 2}, true); }, {x});
  check_gradients([](auto& in) { return mean(in[0], {-1}); }, {x});
  check_gradients([](auto& in) { return mean(in[0], {0, 1}, true); }, {x});
  for (int axis = 0; axis < 3; ++axis) {
    check_gradients([axis](auto& in) { return max(in[0], axis); }, {x});
    check_gradients([axis](auto& in) { return softmax(in[0], axis); }, {x});
    check_gradients([axis](auto& in) { return log_softmax(in[0], axis); }, {x});
  }
}

TEST_CASE("prod over any axes, with one and with two zeros") {
  const Shape s{rdim(2, 4), rdim(2, 4), rdim(2, 4)};
  Tensor x = random_tensor(s, rng, -1.5, 1.5);
  check_gradients([](auto& in) { return prod(in[0]); }, {x});
  check_gradients([](auto& in) { return prod(in[0], {1}); }, {x});
  check_gradients([](auto& in) { return prod(in[0], {0, 2}, true); }, {x});
  check_gradients([](auto& in) { return prod(in[0], {-1, 0}); }, {x});
  // Zeros: dividing the product by x would give 0/0 here. One zero in a reduced group leaves a
  // single non-zero gradient (at the zero); two zeros leave none. Finite differences are exact
  // for a product (linear in each element), so they see both cases.
  std::vector<double> values = x.to_vector_f64();
  values[0] = 0.0;                          // one zero in row [0, 0, :] ...
  values[values.size() - 1] = 0.0;          // ... and two zeros in the last row
  values[values.size() - 2] = 0.0;
  Tensor zeros = Tensor::from_vector(values, s);
  check_gradients([](auto& in) { return prod(in[0], {2}); }, {zeros});
  check_gradients([](auto& in) { return prod(in[0]); }, {zeros});
  check_gradients([](auto& in) { return prod(in[0], {0, 1}, true); }, {zeros});

  Tensor one_zero = Tensor::from_vector(std::vector<double>{2, 0, 3, 4}, {4}).set_requires_grad();
  prod(one_zero).backward();
  CHECK(one_zero.grad().to_vector_f64() == std::vector<double>{0, 24, 0, 0});
  Tensor two_zeros = Tensor::from_vector(std::vector<double>{2, 0, 3, 0}, {4}).set_requires_grad();
  prod(two_zeros).backward();
  CHECK(two_zeros.grad().to_vector_f64() == std::vector<double>{0, 0, 0, 0});
  // Values and shapes as sum's conventions.
  Tensor m = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(prod(m).to_vector_f64() == std::vector<double>{720});
  CHECK(prod(m).shape() == Shape{});
  CHECK(prod(m, {0}).to_vector_f64() == std::vector<double>{4, 10, 18});
  CHECK(prod(m, {-1}, true).shape() == Shape{2, 1});
  CHECK(prod(m, {-1}, true).to_vector_f64() == std::vector<double>{6, 120});
}

TEST_CASE("shape ops") {
  Tensor x = random_tensor({2, 3, 4}, rng);
  Tensor y = random_tensor({2, 2, 4}, rng);
  check_gradients([](auto& in) { return reshape(in[0], {4, -1}); }, {x});
  check_gradients([](auto& in) { return transpose(in[0], 0, 2); }, {x});
  check_gradients([](auto& in) { return permute(in[0], {1, 2, 0}); }, {x});
  check_gradients([](auto& in) { return slice(in[0], 1, 1, 3); }, {x});
  check_gradients([](auto& in) { return concat({in[0], in[1]}, 1); }, {x, y});
  check_gradients([](auto& in) {
    auto parts = split(in[0], {1, 2}, 1);
    return add(mul(parts[0], parts[0]), sum(parts[1], {1}, true));
  }, {x});
  // A view of a view that is then made contiguous, and a broadcast.
  check_gradients([](auto& in) { return transpose(slice(in[0], 2, 1, 4), 0, 1).contiguous(); }, {x});
  check_gradients([](auto& in) { return broadcast_to(in[0], {3, 2, 3, 4}); }, {x});
}

TEST_CASE("matmul, plain, transposed and batched") {
  const int64_t M = rdim(1, 5), K = rdim(1, 5), N = rdim(1, 5), B = rdim(2, 3);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor a = random_tensor(ta ? Shape{K, M} : Shape{M, K}, rng);
      Tensor b = random_tensor(tb ? Shape{N, K} : Shape{K, N}, rng);
      check_gradients([=](auto& in) { return matmul(in[0], in[1], ta, tb); }, {a, b});
      Tensor ab = random_tensor(ta ? Shape{B, K, M} : Shape{B, M, K}, rng);
      Tensor bb = random_tensor(tb ? Shape{B, N, K} : Shape{B, K, N}, rng);
      check_gradients([=](auto& in) { return matmul(in[0], in[1], ta, tb); }, {ab, bb});
      // Batched left operand against a shared right matrix (a Dense layer on a sequence).
      check_gradients([=](auto& in) { return matmul(in[0], in[1], ta, tb); }, {ab, b});
      check_gradients([=](auto& in) { return matmul(in[0], in[1], ta, tb); }, {a, bb});
    }
}

TEST_CASE("embedding gather with repeated ids") {
  Tensor table = random_tensor({5, 3}, rng);
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{0, 4, 4, 2, 0, 0}, {2, 3});
  check_gradients([ids](auto& in) { return gather_rows(in[0], ids); }, {table});
}

TEST_CASE("gather along any axis with repeated and negative indices") {
  Tensor x = random_tensor({3, 4, 2}, rng);
  Tensor idx = Tensor::from_vector(std::vector<int32_t>{-1, 2, 0, -4, 3, 3}, {3, 2});
  check_gradients([idx](auto& in) { return gather(in[0], idx, 1); }, {x});
  // Forward: -k picks n - k, and the indices' shape replaces the gathered axis.
  Tensor y = gather(x, idx, 1);
  CHECK(y.shape() == Shape{3, 3, 2, 2});
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t c = 0; c < 2; ++c) {
      CHECK(y.to_vector()[((b * 3 + 0) * 2 + 0) * 2 + c] == x.to_vector()[(b * 4 + 3) * 2 + c]);
      CHECK(y.to_vector()[((b * 3 + 1) * 2 + 1) * 2 + c] == x.to_vector()[(b * 4 + 0) * 2 + c]);
    }
  Tensor first = Tensor::from_vector(std::vector<int32_t>{-3, 2, 2}, {3});
  check_gradients([first](auto& in) { return gather(in[0], first, 0); }, {x});
}

TEST_CASE("fused cross-entropy with padding mask") {
  Tensor logits = random_tensor({2, 4, 6}, rng, -3, 3);
  Tensor targets = Tensor::from_vector(std::vector<int32_t>{3, 1, 0, 0, 5, 2, 4, 0}, {2, 4});
  check_gradients([targets](auto& in) { return cross_entropy(in[0], targets, 0); }, {logits});
  // Against the composed definition: sum(-log_softmax[target] * mask) / sum(mask).
  Tensor fused = cross_entropy(logits, targets, 0);
  std::vector<double> lp = log_softmax(logits).to_vector_f64();
  std::vector<int32_t> t = targets.to_vector_i32();
  double total = 0, count = 0;
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] != 0) {
      total -= lp[i * 6 + t[i]];
      count += 1;
    }
  CHECK(fused.item() == doctest::Approx(total / count).epsilon(1e-12));
}

TEST_CASE("layer norm and batch norm") {
  Tensor x = random_tensor({3, 2, 5}, rng);
  Tensor gamma = random_tensor({5}, rng), beta = random_tensor({5}, rng);
  check_gradients([](auto& in) { return layer_norm(in[0], in[1], in[2], 1e-3); }, {x, gamma, beta});
  for (bool training : {false, true}) {
    check_gradients([training](auto& in) {
      Tensor mm = Tensor::zeros({5}, DType::F64), mv = Tensor::ones({5}, DType::F64);
      return batch_norm(in[0], in[1], in[2], mm, mv, training, 0.99, 1e-3);
    }, {x, gamma, beta});
    check_gradients([training](auto& in) {
      Tensor mm = Tensor::full({5}, 0.3, DType::F64), mv = Tensor::full({5}, 0.7, DType::F64);
      return batch_norm(in[0], Tensor(), in[1], mm, mv, training, 0.99, 1e-3);
    }, {x, beta});
  }
}

TEST_CASE("layer norm matches its composed definition") {
  Tensor x = random_tensor({4, 7}, rng), gamma = random_tensor({7}, rng), beta = random_tensor({7}, rng);
  Tensor fused = layer_norm(x, gamma, beta, 1e-3);
  Tensor mu = mean(x, {-1}, true);
  Tensor var = mean(square(sub(x, mu)), {-1}, true);
  Tensor composed = add(mul(div(sub(x, mu), sqrt(add_scalar(var, 1e-3))), gamma), beta);
  CHECK(glimpse::testing::max_abs_diff(fused.to_vector_f64(), composed.to_vector_f64()) < 1e-12);

  // The statistics it can return: the same mean and 1/sqrt(var + eps), row by row, and copies that
  // a caller may change without touching the backward pass.
  LayerNormStatistics stats;
  Tensor xg = x.clone().set_requires_grad();
  Tensor with_stats = layer_norm(xg, gamma, beta, 1e-3, stats);
  CHECK(stats.mean.shape() == Shape{4});
  CHECK(stats.inv_std.shape() == Shape{4});
  CHECK(glimpse::testing::max_abs_diff(stats.mean.to_vector_f64(), reshape(mu, {4}).to_vector_f64()) < 1e-12);
  Tensor inv = div(Tensor::ones({4, 1}, DType::F64), sqrt(add_scalar(var, 1e-3)));
  CHECK(glimpse::testing::max_abs_diff(stats.inv_std.to_vector_f64(), reshape(inv, {4}).to_vector_f64()) < 1e-12);
  CHECK(glimpse::testing::max_abs_diff(with_stats.to_vector_f64(), fused.to_vector_f64()) == 0);
  stats.mean.fill_(100.0);  // must not reach the backward pass of with_stats
  stats.inv_std.fill_(-3.0);
  Tensor r = random_tensor({4, 7}, rng);
  sum(mul(with_stats, r)).backward();
  Tensor xr = x.clone().set_requires_grad();
  sum(mul(layer_norm(xr, gamma, beta, 1e-3), r)).backward();
  CHECK(glimpse::testing::max_abs_diff(xg.grad().to_vector_f64(), xr.grad().to_vector_f64()) == 0);
}

TEST_CASE("conv2d: both paddings, strides 1 and 2, odd and even sizes") {
  for (Padding padding : {Padding::Same, Padding::Valid})
    for (int stride : {1, 2})
      for (int size : {5, 6}) {
        Tensor x = random_tensor({2, size, size + 1, 3}, rng);
        Tensor w = random_tensor({3, 2, 3, 4}, rng);
        check_gradients([=](auto& in) { return conv2d(in[0], in[1], stride, stride, padding); },
                        {x, w});
      }
  Tensor x = random_tensor({2, 4, 3, 5}, rng);
  Tensor w1 = random_tensor({1, 1, 5, 2}, rng);
  check_gradients([](auto& in) { return conv2d(in[0], in[1], 1, 1, Padding::Same); }, {x, w1});
}

TEST_CASE("pooling") {
  for (Padding padding : {Padding::Same, Padding::Valid})
    for (int stride : {1, 2}) {
      Tensor x = random_tensor({2, 5, 6, 3}, rng);
      check_gradients([=](auto& in) { return max_pool2d(in[0], 3, 3, stride, stride, padding); }, {x});
      check_gradients([=](auto& in) { return avg_pool2d(in[0], 3, 3, stride, stride, padding); }, {x});
    }
}

TEST_CASE("conv2d: explicit asymmetric padding, dilation, groups, depthwise") {
  struct Case {
    Shape x, w;
    int sh, sw, dh, dw, groups;
    Padding2d padding;
  };
  const Case cases[] = {
      {{2, 5, 6, 3}, {3, 2, 3, 4}, 1, 2, 1, 1, 1, Padding2d::explicit_pads(2, 0, 1, 3)},
      {{2, 7, 6, 2}, {3, 3, 2, 3}, 1, 1, 2, 2, 1, Padding2d::same()},
      {{1, 8, 9, 2}, {2, 3, 2, 2}, 2, 1, 3, 2, 1, Padding2d::same_lower()},
      {{2, 5, 5, 4}, {3, 3, 2, 4}, 2, 2, 1, 1, 2, Padding2d::symmetric(1, 1)},
      {{2, 6, 5, 3}, {3, 3, 1, 6}, 1, 1, 2, 1, 3, Padding2d::same()},  // depthwise, multiplier 2
      {{1, 4, 4, 3}, {1, 1, 3, 2}, 1, 1, 1, 1, 1, Padding2d::explicit_pads(1, 0, 0, 1)},
  };
  for (const Case& c : cases) {
    CAPTURE(c.padding.str());
    Conv2dOptions o;
    o.stride_h = c.sh;
    o.stride_w = c.sw;
    o.dilation_h = c.dh;
    o.dilation_w = c.dw;
    o.groups = c.groups;
    o.padding = c.padding;
    Tensor x = random_tensor(c.x, rng), w = random_tensor(c.w, rng);
    check_gradients([=](auto& in) { return conv2d(in[0], in[1], o); }, {x, w});
    Tensor b = random_tensor({c.w[3]}, rng);
    check_gradients([=](auto& in) { return conv2d_bias_activation(in[0], in[1], in[2], o, true); },
                    {x, w, b});
  }
}

TEST_CASE("pooling: explicit pads, ceil_mode, count_include_pad, dilated max") {
  for (bool ceil_mode : {false, true}) {
    Tensor x = random_tensor({2, 5, 6, 3}, rng);
    Pool2dOptions o;
    o.stride_h = 2;
    o.stride_w = 2;
    o.padding = Padding2d::explicit_pads(1, 0, 2, 1);
    o.ceil_mode = ceil_mode;
    check_gradients([=](auto& in) { return max_pool2d(in[0], 3, 3, o); }, {x});
    check_gradients([=](auto& in) { return avg_pool2d(in[0], 3, 3, o); }, {x});
    o.count_include_pad = true;
    check_gradients([=](auto& in) { return avg_pool2d(in[0], 3, 3, o); }, {x});
  }
  Tensor x = random_tensor({1, 8, 9, 2}, rng);
  Pool2dOptions o;
  o.stride_h = 1;
  o.stride_w = 2;
  o.dilation_h = 2;
  o.dilation_w = 3;
  o.padding = Padding2d::explicit_pads(1, 1, 2, 0);
  o.ceil_mode = true;
  check_gradients([=](auto& in) { return max_pool2d(in[0], 2, 3, o); }, {x});
}

TEST_CASE("fused GRU sequence, including the initial state") {
  const int64_t B = 2, T = 4, I = 3, U = 3;
  Tensor x = random_tensor({B, T, I}, rng), h0 = random_tensor({B, U}, rng);
  Tensor W = random_tensor({I, 3 * U}, rng), R = random_tensor({U, 3 * U}, rng);
  Tensor b = random_tensor({2, 3 * U}, rng);
  check_gradients([](auto& in) { return gru_sequence(in[0], in[1], in[2], in[3], in[4]).first; },
                  {x, h0, W, R, b});
  check_gradients([](auto& in) { return gru_sequence(in[0], in[1], in[2], in[3], in[4]).second; },
                  {x, h0, W, R, b});
  // Both outputs used at once (the decoder uses the sequence; inference carries the state).
  check_gradients([](auto& in) {
    auto [seq, state] = gru_sequence(in[0], in[1], in[2], in[3], in[4]);
    return add(sum(seq, {1}), mul(state, state));
  }, {x, h0, W, R, b});
}

TEST_CASE("fused GRU matches the step-by-step composition of primitive ops") {
  const int64_t B = 3, T = 5, I = 4, U = 2;
  Tensor x = random_tensor({B, T, I}, rng), h = random_tensor({B, U}, rng);
  Tensor W = random_tensor({I, 3 * U}, rng), R = random_tensor({U, 3 * U}, rng);
  Tensor b = random_tensor({2, 3 * U}, rng);
  auto [seq, state] = gru_sequence(x, h, W, R, b);
  Tensor b_in = reshape(slice(b, 0, 0, 1), {3 * U}), b_rec = reshape(slice(b, 0, 1, 2), {3 * U});
  for (int64_t t = 0; t < T; ++t) {
    Tensor xt = reshape(slice(x, 1, t, t + 1), {B, I});
    auto xs = split(add(matmul(xt, W), b_in), {U, U, U}, 1);
    auto hs = split(add(matmul(h, R), b_rec), {U, U, U}, 1);
    Tensor z = sigmoid(add(xs[0], hs[0])), r = sigmoid(add(xs[1], hs[1]));
    Tensor c = tanh(add(xs[2], mul(r, hs[2])));
    h = add(mul(z, h), mul(add_scalar(neg(z), 1.0), c));
    Tensor fused_t = reshape(slice(seq, 1, t, t + 1), {B, U});
    CHECK(glimpse::testing::max_abs_diff(fused_t.to_vector_f64(), h.to_vector_f64()) < 1e-12);
  }
  CHECK(glimpse::testing::max_abs_diff(state.to_vector_f64(), h.to_vector_f64()) < 1e-12);
}

TEST_CASE("fused GRU variants: reset gate before the matmul, go_backwards, both") {
  const int64_t B = 2, T = 4, I = 3, U = 3;
  Tensor x = random_tensor({B, T, I}, rng), h0 = random_tensor({B, U}, rng);
  Tensor W = random_tensor({I, 3 * U}, rng), R = random_tensor({U, 3 * U}, rng);
  Tensor b2 = random_tensor({2, 3 * U}, rng), b1 = random_tensor({3 * U}, rng);
  for (bool reset_after : {false, true}) {
    for (bool go_backwards : {false, true}) {
      if (reset_after && !go_backwards) continue;  // the default, checked above
      INFO("reset_after " << reset_after << " go_backwards " << go_backwards);
      const GruOptions opt{reset_after, go_backwards};
      Tensor b = reset_after ? b2 : b1;
      // The sequence and the state weighted differently, so a mix-up of steps shows.
      check_gradients([opt](auto& in) {
        auto [seq, state] = gru_sequence(in[0], in[1], in[2], in[3], in[4], opt);
        return add(sum(mul(seq, seq), {1}), mul_scalar(state, 3.0));
      }, {x, h0, W, R, b});
    }
  }
  // T = 1: the first step's special case (h_prev = h0) on the reset-before path.
  Tensor x1 = random_tensor({B, 1, I}, rng);
  check_gradients([](auto& in) {
    return gru_sequence(in[0], in[1], in[2], in[3], in[4], GruOptions{false, false}).first;
  }, {x1, h0, W, R, b1});
}

TEST_CASE("fused GRU, reset before the matmul and go_backwards: the step-by-step composition") {
  const int64_t B = 3, T = 5, I = 4, U = 2;
  Tensor x = random_tensor({B, T, I}, rng), h = random_tensor({B, U}, rng);
  Tensor W = random_tensor({I, 3 * U}, rng), R = random_tensor({U, 3 * U}, rng);
  Tensor b = random_tensor({3 * U}, rng);
  auto [seq, state] = gru_sequence(x, h, W, R, b, GruOptions{false, true});
  auto rs = split(R, {2 * U, U}, 1);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = T - 1 - s;  // go_backwards reads the last input step first
    Tensor xt = reshape(slice(x, 1, t, t + 1), {B, I});
    auto xs = split(add(matmul(xt, W), b), {U, U, U}, 1);
    auto hs = split(matmul(h, rs[0]), {U, U}, 1);
    Tensor z = sigmoid(add(xs[0], hs[0])), r = sigmoid(add(xs[1], hs[1]));
    Tensor c = tanh(add(xs[2], matmul(mul(r, h), rs[1])));
    h = add(mul(z, h), mul(add_scalar(neg(z), 1.0), c));
    // The sequence is in processing order: position s holds the state after step s.
    Tensor fused_s = reshape(slice(seq, 1, s, s + 1), {B, U});
    CHECK(glimpse::testing::max_abs_diff(fused_s.to_vector_f64(), h.to_vector_f64()) < 1e-12);
  }
  CHECK(glimpse::testing::max_abs_diff(state.to_vector_f64(), h.to_vector_f64()) < 1e-12);
}

TEST_CASE("dropout: gradient through the fixed mask, expectation preserved") {
  Tensor x = random_tensor({4, 6}, rng);
  check_gradients([](auto& in) { return dropout(in[0], 0.3, 99); }, {x});
  Tensor ones = Tensor::ones({200000}, DType::F64);
  double m = mean(dropout(ones, 0.25, 5)).item();
  CHECK(m == doctest::Approx(1.0).epsilon(0.01));
}
