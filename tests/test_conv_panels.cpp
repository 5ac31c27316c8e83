// conv2d on the CPU builds its patch matrix a panel of output rows at a time (tensor/ops_conv.cpp).
// These shapes are big enough to be cut into several panels, with panels that start and end
// inside an image, so the forward and both gradients are compared against a direct convolution
// written out as loops. Also: conv2d_bias_activation against the composed ops.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "support/gradcheck.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"

using namespace glimpse;
using glimpse::testing::max_abs;
using glimpse::testing::max_abs_diff;
using glimpse::testing::random_tensor;

namespace {

std::mt19937 rng(2024);

struct Case {
  int64_t N, H, W, C, KH, KW, COUT;
  int stride;
  Padding padding;
};

// y = conv(x, w), and for a given gy the adjoints gx = dL/dx, gw = dL/dw of L = sum(y * gy),
// by direct loops over every output pixel and window cell.
struct Direct {
  std::vector<double> y, gx, gw;
};

Direct direct_conv(const Case& c, const std::vector<double>& x, const std::vector<double>& w,
                   const std::vector<double>& gy, int64_t OH, int64_t OW) {
  const PaddingPlan ph = plan_padding(c.H, c.KH, c.stride, c.padding);
  const PaddingPlan pw = plan_padding(c.W, c.KW, c.stride, c.padding);
  Direct d{std::vector<double>(c.N * OH * OW * c.COUT, 0.0), std::vector<double>(x.size(), 0.0),
           std::vector<double>(w.size(), 0.0)};
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t kh = 0; kh < c.KH; ++kh)
          for (int64_t kw = 0; kw < c.KW; ++kw) {
            const int64_t ih = oh * c.stride - ph.pad_before + kh;
            const int64_t iw = ow * c.stride - pw.pad_before + kw;
            if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
            for (int64_t ci = 0; ci < c.C; ++ci) {
              const int64_t xi = ((n * c.H + ih) * c.W + iw) * c.C + ci;
              for (int64_t co = 0; co < c.COUT; ++co) {
                const int64_t yi = ((n * OH + oh) * OW + ow) * c.COUT + co;
                const int64_t wi = ((kh * c.KW + kw) * c.C + ci) * c.COUT + co;
                d.y[yi] += x[xi] * w[wi];
                d.gx[xi] += gy[yi] * w[wi];
                d.gw[wi] += gy[yi] * x[xi];
              }
            }
          }
  return d;
}

void check_case(const Case& c) {
  CAPTURE(c.N);
  CAPTURE(c.H);
  CAPTURE(c.W);
  CAPTURE(c.C);
  CAPTURE(c.KH);
  CAPTURE(c.KW);
  CAPTURE(c.stride);
  CAPTURE(padding_name(c.padding));
  Tensor x = random_tensor({c.N, c.H, c.W, c.C}, rng);
  Tensor w = random_tensor({c.KH, c.KW, c.C, c.COUT}, rng);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  Tensor y = conv2d(x, w, c.stride, c.stride, c.padding);
  const int64_t OH = y.shape()[1], OW = y.shape()[2];
  Tensor gy = random_tensor(y.shape(), rng);
  y.backward(gy);
  const Direct d = direct_conv(c, x.to_vector_f64(), w.to_vector_f64(), gy.to_vector_f64(), OH, OW);
  const std::vector<double> y_got = y.to_vector_f64(), gx_got = x.grad().to_vector_f64(),
                            gw_got = w.grad().to_vector_f64();
  CHECK(max_abs_diff(y_got, d.y) <= 1e-12 * std::max(1.0, max_abs(d.y)));
  CHECK(max_abs_diff(gx_got, d.gx) <= 1e-12 * std::max(1.0, max_abs(d.gx)));
  CHECK(max_abs_diff(gw_got, d.gw) <= 1e-12 * std::max(1.0, max_abs(d.gw)));
}

}  // namespace

TEST_CASE("conv2d over several panels matches a direct convolution (forward and gradients)") {
  // Depth (KH*KW*C) above 512 doubles, so a panel holds at most 2 MB / (8 * depth) < 512 output
  // pixels: every case below has two or more panels, and panel boundaries fall inside images.
  const std::vector<Case> cases = {
      {3, 23, 21, 57, 3, 3, 5, 1, Padding::Same},
      {5, 47, 45, 57, 3, 3, 3, 2, Padding::Valid},
      {3, 45, 44, 57, 3, 3, 4, 2, Padding::Same},  // SAME with stride 2: padding before and after
      {5, 19, 17, 80, 7, 1, 3, 1, Padding::Same},
      {5, 19, 17, 80, 1, 7, 3, 1, Padding::Same},
      {2, 40, 30, 21, 5, 5, 3, 1, Padding::Same},
      {2, 40, 30, 21, 5, 5, 3, 3, Padding::Same},  // stride 3 > half the window
  };
  for (const Case& c : cases) check_case(c);
}

TEST_CASE("a small conv (batch 1, a few hundred pixels) shared by several threads") {
  // Below 256 output pixels per thread the rows are still split between the threads, down to
  // 32 pixels each: 8x8 and 17x17 grids at batch 1, as at the end of Inception-ResNet-v2.
  const int saved_threads = glimpse::parallel::num_threads();
  const std::vector<Case> cases = {
      {1, 8, 8, 40, 1, 1, 24, 1, Padding::Same},   // 64 pixels: two panels of 32
      {1, 17, 17, 24, 1, 1, 20, 1, Padding::Same},  // pointwise: panels end inside image rows
      {1, 17, 17, 24, 1, 7, 20, 1, Padding::Same},
      {1, 17, 17, 24, 7, 1, 20, 1, Padding::Same},
      {1, 9, 9, 16, 3, 3, 12, 2, Padding::Valid},  // 16 pixels: one panel however many threads
      {2, 9, 7, 16, 3, 3, 12, 1, Padding::Same},
  };
  for (int threads : {2, 3, 5}) {
    CAPTURE(threads);
    glimpse::parallel::set_num_threads(threads);
    for (const Case& c : cases) check_case(c);
    // The inference epilogue (bias, residual, ReLU) on the shared rows, for a 1x3 and a 1x1 kernel.
    for (int64_t kw : {3, 1}) {
      CAPTURE(kw);
      Tensor x = random_tensor({1, 17, 17, 32}, rng).to(DType::F32);
      Tensor w = random_tensor({1, kw, 32, 40}, rng).to(DType::F32);
      Tensor b = random_tensor({40}, rng).to(DType::F32);
      Tensor residual = random_tensor({1, 17, 17, 40}, rng).to(DType::F32);
      Tensor composed = relu(add(residual, add(conv2d(x, w, 1, 1, Padding::Same), b)));
      NoGradGuard no_grad;
      Tensor fused = conv2d_bias_activation(x, w, b, 1, 1, Padding::Same, true, residual);
      CHECK(max_abs_diff(fused.to_vector_f64(), composed.to_vector_f64()) <= 1e-5);
    }
  }
  glimpse::parallel::set_num_threads(saved_threads);
}

TEST_CASE("conv2d_bias_activation equals conv2d + bias (+ relu), with and without gradients") {
  for (bool relu_after : {false, true}) {
    for (Padding padding : {Padding::Same, Padding::Valid}) {
      Tensor x = random_tensor({3, 41, 37, 24}, rng).to(DType::F32);
      Tensor w = random_tensor({3, 3, 24, 16}, rng).to(DType::F32);
      Tensor b = random_tensor({16}, rng).to(DType::F32);
      Tensor composed = add(conv2d(x, w, 1, 1, padding), b);
      if (relu_after) composed = relu(composed);
      {
        NoGradGuard no_grad;
        Tensor fused = conv2d_bias_activation(x, w, b, 1, 1, padding, relu_after);
        REQUIRE(fused.shape() == composed.shape());
        CHECK(max_abs_diff(fused.to_vector_f64(), composed.to_vector_f64()) <= 1e-5);
      }
      // With gradients wanted it is the composed ops, so backward works.
      Tensor xg = x.clone().set_requires_grad(true);
      Tensor y = conv2d_bias_activation(xg, w, b, 2, 2, padding, relu_after);
      sum(y).backward();
      CHECK(xg.grad().defined());
    }
  }
  // With a residual added before the ReLU (a residual block's end), over several panels.
  for (Padding padding : {Padding::Same, Padding::Valid}) {
    Tensor x = random_tensor({2, 45, 43, 30}, rng).to(DType::F32);
    Tensor w = random_tensor({3, 3, 30, 8}, rng).to(DType::F32);
    Tensor b = random_tensor({8}, rng).to(DType::F32);
    Tensor y = conv2d(x, w, 1, 1, padding);
    Tensor residual = random_tensor(y.shape(), rng).to(DType::F32);
    Tensor composed = relu(add(residual, add(y, b)));
    NoGradGuard no_grad;
    Tensor fused = conv2d_bias_activation(x, w, b, 1, 1, padding, true, residual);
    CHECK(max_abs_diff(fused.to_vector_f64(), composed.to_vector_f64()) <= 1e-5);
    CHECK_THROWS_WITH_AS(conv2d_bias_activation(x, w, b, 2, 2, padding, true, residual),
                         doctest::Contains("must have the output's shape"), std::invalid_argument);
  }
  // A pointwise (1x1) conv takes the same epilogue without any im2col.
  Tensor x = random_tensor({2, 9, 7, 12}, rng);
  Tensor w = random_tensor({1, 1, 12, 5}, rng);
  Tensor b = random_tensor({5}, rng);
  NoGradGuard no_grad;
  CHECK(max_abs_diff(conv2d_bias_activation(x, w, b, 1, 1, Padding::Same, true).to_vector_f64(),
                     relu(add(conv2d(x, w, 1, 1, Padding::Same), b)).to_vector_f64()) <= 1e-12);
}

TEST_CASE("conv2d_bias_activation rejects a bias of the wrong size") {
  Tensor x = Tensor::zeros({1, 4, 4, 3});
  Tensor w = Tensor::zeros({3, 3, 3, 2});
  CHECK_THROWS_WITH_AS(conv2d_bias_activation(x, w, Tensor::zeros({3}), 1, 1, Padding::Same, true),
                       doctest::Contains("bias must be [2]"), std::invalid_argument);
}
