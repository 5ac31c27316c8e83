// conv2d and pooling beyond Keras's same/valid: the padding rules (SAME_UPPER/LOWER, explicit,
// ONNX pads, ceil_mode) against hand-worked numbers, and explicit/asymmetric padding, dilation,
// groups, depthwise, ceil_mode and count_include_pad against naive loops written here from the
// ONNX/PyTorch definitions, in double precision. Gradients: tests/test_ops_grad.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "support/gradcheck.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

using namespace glimpse;
using glimpse::testing::max_abs_diff;
using glimpse::testing::random_tensor;

namespace {

std::mt19937 rng(2024);

// One test geometry: everything explicit, so the references below need no padding rule.
struct Geo {
  int64_t N, H, W, C;
  int64_t KH, KW, SH, SW, DH, DW;
  int64_t top, bottom, left, right;
  bool ceil_mode = false;
};

// Output size along one axis from the ONNX/PyTorch formula (written independently of the op).
int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t before, int64_t after,
                 bool ceil_mode) {
  const double span = static_cast<double>(in + before + after - ((k - 1) * d + 1));
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(span / s) : std::floor(span / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + before) --out;
  return out;
}

Padding2d pads_of(const Geo& g) { return Padding2d::explicit_pads(g.top, g.bottom, g.left, g.right); }

// y[n, oh, ow, co] = sum over kh, kw, ci of x[n, ih, iw, group(co) * CG + ci] * w[kh, kw, ci, co].
std::vector<double> naive_conv(const Geo& g, const std::vector<double>& x,
                               const std::vector<double>& w, int64_t cout, int64_t groups,
                               int64_t* oh_out, int64_t* ow_out) {
  const int64_t OH = out_size(g.H, g.KH, g.SH, g.DH, g.top, g.bottom, false);
  const int64_t OW = out_size(g.W, g.KW, g.SW, g.DW, g.left, g.right, false);
  const int64_t cg = g.C / groups, og = cout / groups;
  std::vector<double> y(g.N * OH * OW * cout, 0.0);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t co = 0; co < cout; ++co) {
          double acc = 0;
          for (int64_t kh = 0; kh < g.KH; ++kh)
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t ih = oh * g.SH - g.top + kh * g.DH;
              const int64_t iw = ow * g.SW - g.left + kw * g.DW;
              if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
              for (int64_t ci = 0; ci < cg; ++ci)
                acc += x[((n * g.H + ih) * g.W + iw) * g.C + (co / og) * cg + ci] *
                       w[((kh * g.KW + kw) * cg + ci) * cout + co];
            }
          y[((n * OH + oh) * OW + ow) * cout + co] = acc;
        }
  *oh_out = OH;
  *ow_out = OW;
  return y;
}

// The adjoint of naive_conv: gx and gw of L = sum(y * gy), by the same loops.
void naive_conv_backward(const Geo& g, const std::vector<double>& x, const std::vector<double>& w,
                         const std::vector<double>& gy, int64_t cout, int64_t groups,
                         int64_t OH, int64_t OW, std::vector<double>* gx,
                         std::vector<double>* gw) {
  const int64_t cg = g.C / groups, og = cout / groups;
  gx->assign(x.size(), 0.0);
  gw->assign(w.size(), 0.0);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t co = 0; co < cout; ++co) {
          const double d = gy[((n * OH + oh) * OW + ow) * cout + co];
          for (int64_t kh = 0; kh < g.KH; ++kh)
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t ih = oh * g.SH - g.top + kh * g.DH;
              const int64_t iw = ow * g.SW - g.left + kw * g.DW;
              if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
              for (int64_t ci = 0; ci < cg; ++ci) {
                const int64_t xi = ((n * g.H + ih) * g.W + iw) * g.C + (co / og) * cg + ci;
                const int64_t wi = ((kh * g.KW + kw) * cg + ci) * cout + co;
                (*gx)[xi] += d * w[wi];
                (*gw)[wi] += d * x[xi];
              }
            }
        }
}

// Max: the largest real cell. Average: PyTorch's divisor, the window clipped to the padded input
// (count_include_pad) or the number of real cells.
std::vector<double> naive_pool(const Geo& g, const std::vector<double>& x, bool is_max,
                               bool include_pad, int64_t* oh_out, int64_t* ow_out) {
  const int64_t OH = out_size(g.H, g.KH, g.SH, g.DH, g.top, g.bottom, g.ceil_mode);
  const int64_t OW = out_size(g.W, g.KW, g.SW, g.DW, g.left, g.right, g.ceil_mode);
  std::vector<double> y(g.N * OH * OW * g.C);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < g.C; ++c) {
          double best = -std::numeric_limits<double>::infinity(), total = 0;
          int64_t real = 0;
          for (int64_t kh = 0; kh < g.KH; ++kh)
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t ih = oh * g.SH - g.top + kh * g.DH;
              const int64_t iw = ow * g.SW - g.left + kw * g.DW;
              if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
              const double v = x[((n * g.H + ih) * g.W + iw) * g.C + c];
              best = std::max(best, v);
              total += v;
              ++real;
            }
          double divisor = static_cast<double>(real);
          if (include_pad) {
            const int64_t h0 = oh * g.SH - g.top, w0 = ow * g.SW - g.left;
            const int64_t h1 = std::min(h0 + g.KH, g.H + g.bottom);
            const int64_t w1 = std::min(w0 + g.KW, g.W + g.right);
            divisor = static_cast<double>((h1 - h0) * (w1 - w0));
          }
          y[((n * OH + oh) * OW + ow) * g.C + c] = is_max ? best : total / divisor;
        }
  *oh_out = OH;
  *ow_out = OW;
  return y;
}

}  // namespace

TEST_CASE("padding rules: same (upper), same_lower, explicit, ONNX pads, ceil_mode") {
  auto plan = [](int64_t in, int64_t k, int64_t s, int64_t d, const Padding2d& p, bool ceil) {
    const PaddingPlan r = plan_padding(in, k, s, d, p, 0, ceil);
    return std::vector<int64_t>{r.out, r.pad_before, r.pad_after};
  };
  using V = std::vector<int64_t>;
  // 6 cells, 3-wide window, stride 2: 3 outputs need 7 cells, one padded; TF puts it after.
  CHECK(plan(6, 3, 2, 1, Padding::Same, false) == V{3, 0, 1});
  CHECK(plan(6, 3, 2, 1, Padding2d::same_lower(), false) == V{3, 1, 0});
  // A 3-wide window dilated 2 spans 5 cells: "same" at stride 1 pads 2 + 2.
  CHECK(plan(7, 3, 1, 2, Padding2d::same(), false) == V{7, 2, 2});
  CHECK(plan(5, 2, 1, 1, Padding2d::same_lower(), false) == V{5, 1, 0});
  CHECK(plan(5, 2, 1, 1, Padding::Valid, false) == V{4, 0, 0});
  CHECK(plan(2, 3, 1, 1, Padding::Valid, false)[0] == 0);  // does not fit
  // Explicit pairs are used as given: (5 + 1 + 2 - 3) / 2 + 1 = 3.
  CHECK(plan(5, 3, 2, 1, Padding2d::explicit_pads(1, 2, 0, 0), false) == V{3, 1, 2});
  // ceil_mode: 5 cells, window 2, stride 2 -> 2 windows floored, 3 rounded up (the last one
  // starts at cell 4, inside the input, and hangs over the end).
  CHECK(plan(5, 2, 2, 1, Padding2d(), false) == V{2, 0, 0});
  CHECK(plan(5, 2, 2, 1, Padding2d(), true) == V{3, 0, 0});
  // ...but a window may not start in the "after" padding: 5 cells, pads 1/1, window 3, stride 3:
  // rounding up gives 3 windows, the third starting at padded cell 6 = past the input: dropped.
  CHECK(plan(5, 3, 3, 1, Padding2d::symmetric(1, 0), true) == V{2, 1, 1});
  // The "same" rules fix the output size whatever ceil_mode says.
  CHECK(plan(6, 3, 2, 1, Padding::Same, true) == V{3, 0, 1});
  // Width uses left/right.
  const PaddingPlan w = plan_padding(5, 3, 1, 1, Padding2d::explicit_pads(0, 0, 2, 1), 1);
  CHECK(w.out == 6);
  CHECK(w.pad_before == 2);
  CHECK(w.pad_after == 1);
  // ONNX pads are [x1_begin, x2_begin, x1_end, x2_end] = [top, left, bottom, right].
  const Padding2d onnx = Padding2d::onnx({1, 2, 3, 4});
  CHECK(onnx.top == 1);
  CHECK(onnx.left == 2);
  CHECK(onnx.bottom == 3);
  CHECK(onnx.right == 4);
  const Padding2d sym = Padding2d::symmetric(2, 3);
  CHECK(sym.top == 2);
  CHECK(sym.bottom == 2);
  CHECK(sym.left == 3);
  CHECK(sym.right == 3);
  CHECK_THROWS_WITH_AS(Padding2d::onnx({1, 2}), doctest::Contains("[top, left, bottom, right]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(Padding2d::explicit_pads(0, -1, 0, 0), doctest::Contains("negative"),
                       std::invalid_argument);
}

TEST_CASE("conv2d with explicit padding, dilation and groups matches a direct convolution") {
  struct Case {
    Geo g;
    int64_t cout, groups;
  };
  const Case cases[] = {
      {{2, 6, 7, 3, 3, 3, 1, 1, 1, 1, 2, 0, 1, 3}, 4, 1},  // asymmetric explicit pads
      {{1, 9, 8, 2, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2}, 3, 1},  // dilation 2 with "same"-sized pads
      {{2, 10, 11, 3, 3, 2, 2, 1, 2, 3, 1, 0, 0, 2}, 4, 1},  // stride with dilation, per axis
      {{1, 8, 8, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 5, 1},  // 1x1 stride 1 with padding: not a GEMM of x
      {{1, 5, 5, 2, 2, 2, 1, 1, 1, 1, 4, 3, 0, 3}, 3, 1},  // pads wider than the window: zero rows
      {{2, 7, 6, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, 6, 2},  // groups 2
      {{1, 6, 6, 6, 2, 2, 1, 1, 1, 1, 0, 1, 0, 1}, 3, 3},  // groups 3, one output each
      {{2, 7, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 6, 3},  // depthwise, multiplier 2
      {{1, 9, 9, 4, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2}, 4, 4},  // depthwise, dilated, strided
      // Large enough to be cut into several panels mid-image (dilated pieces of image rows).
      {{2, 44, 44, 64, 3, 3, 1, 1, 2, 2, 1, 3, 2, 2}, 4, 1},
  };
  for (const Case& c : cases) {
    const Geo& g = c.g;
    CAPTURE(g.H);
    CAPTURE(g.KH);
    CAPTURE(g.DH);
    CAPTURE(c.groups);
    Tensor x = random_tensor({g.N, g.H, g.W, g.C}, rng);
    Tensor w = random_tensor({g.KH, g.KW, g.C / c.groups, c.cout}, rng);
    int64_t OH = 0, OW = 0;
    const std::vector<double> expected =
        naive_conv(g, x.to_vector_f64(), w.to_vector_f64(), c.cout, c.groups, &OH, &OW);
    Conv2dOptions o;
    o.stride_h = static_cast<int>(g.SH);
    o.stride_w = static_cast<int>(g.SW);
    o.dilation_h = static_cast<int>(g.DH);
    o.dilation_w = static_cast<int>(g.DW);
    o.groups = static_cast<int>(c.groups);
    o.padding = pads_of(g);
    Tensor y = conv2d(x, w, o);
    REQUIRE(y.shape() == Shape{g.N, OH, OW, c.cout});
    CHECK(max_abs_diff(y.to_vector_f64(), expected) < 1e-12);
    // The fused inference form: the same convolution plus a bias.
    Tensor bias = random_tensor({c.cout}, rng);
    Tensor fused = conv2d_bias_activation(x, w, bias, o, false);
    std::vector<double> with_bias = expected, b = bias.to_vector_f64();
    for (size_t i = 0; i < with_bias.size(); ++i) with_bias[i] += b[i % c.cout];
    CHECK(max_abs_diff(fused.to_vector_f64(), with_bias) < 1e-12);
    // Backward (panel by panel for the large case) against the naive adjoint.
    Tensor xg = x.detach(), wg = w.detach();
    xg.set_requires_grad(true);
    wg.set_requires_grad(true);
    Tensor gy = random_tensor({g.N, OH, OW, c.cout}, rng);
    sum(mul(conv2d(xg, wg, o), gy)).backward();
    std::vector<double> gx, gw;
    naive_conv_backward(g, x.to_vector_f64(), w.to_vector_f64(), gy.to_vector_f64(), c.cout,
                        c.groups, OH, OW, &gx, &gw);
    CHECK(max_abs_diff(xg.grad().to_vector_f64(), gx) < 1e-11);
    CHECK(max_abs_diff(wg.grad().to_vector_f64(), gw) < 1e-10);
  }
}

TEST_CASE("Padding::Same and Padding2d::same() agree with the explicit pairs they stand for") {
  Tensor x = random_tensor({1, 6, 7, 2}, rng), w = random_tensor({3, 4, 2, 3}, rng);
  // 6 rows, stride 2, window 3: pad 0/1; 7 columns, stride 2, window 4: out 4, total 3 -> 1/2.
  Tensor same = conv2d(x, w, 2, 2, Padding::Same);
  Tensor pairs = conv2d(x, w, 2, 2, Padding2d::explicit_pads(0, 1, 1, 2));
  Tensor lower = conv2d(x, w, 2, 2, Padding2d::same_lower());
  Tensor lower_pairs = conv2d(x, w, 2, 2, Padding2d::explicit_pads(1, 0, 2, 1));
  CHECK(max_abs_diff(same.to_vector_f64(), pairs.to_vector_f64()) == 0.0);
  CHECK(max_abs_diff(lower.to_vector_f64(), lower_pairs.to_vector_f64()) == 0.0);
  CHECK(max_abs_diff(same.to_vector_f64(), lower.to_vector_f64()) > 1e-3);  // they do differ
}

TEST_CASE("pooling with explicit pads, ceil_mode, count_include_pad and dilation") {
  const Geo geos[] = {
      {2, 5, 6, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false},
      {2, 5, 6, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true},   // ceil: windows past the padding
      {1, 7, 7, 2, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, true},   // ceil, no padding
      {1, 6, 7, 2, 3, 2, 2, 3, 1, 1, 2, 0, 1, 1, true},   // asymmetric pads, per-axis strides
      {1, 5, 5, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, true},   // ceil drops a window starting in padding
      {2, 8, 9, 3, 2, 3, 1, 2, 1, 1, 1, 0, 2, 1, false},
  };
  for (const Geo& g : geos) {
    CAPTURE(g.H);
    CAPTURE(g.ceil_mode);
    Tensor x = random_tensor({g.N, g.H, g.W, g.C}, rng);
    for (bool include_pad : {false, true}) {
      Pool2dOptions o;
      o.stride_h = static_cast<int>(g.SH);
      o.stride_w = static_cast<int>(g.SW);
      o.padding = pads_of(g);
      o.ceil_mode = g.ceil_mode;
      o.count_include_pad = include_pad;
      int64_t OH = 0, OW = 0;
      const auto expected = naive_pool(g, x.to_vector_f64(), false, include_pad, &OH, &OW);
      Tensor y = avg_pool2d(x, static_cast<int>(g.KH), static_cast<int>(g.KW), o);
      REQUIRE(y.shape() == Shape{g.N, OH, OW, g.C});
      CHECK(max_abs_diff(y.to_vector_f64(), expected) < 1e-12);
      if (!include_pad) {
        const auto expected_max = naive_pool(g, x.to_vector_f64(), true, false, &OH, &OW);
        Tensor m = max_pool2d(x, static_cast<int>(g.KH), static_cast<int>(g.KW), o);
        REQUIRE(m.shape() == Shape{g.N, OH, OW, g.C});
        CHECK(max_abs_diff(m.to_vector_f64(), expected_max) == 0.0);
      }
    }
  }
  // Dilated max pooling (ONNX MaxPool dilations), with and without ceil_mode.
  const Geo dilated[] = {
      {2, 9, 8, 3, 3, 3, 1, 1, 2, 2, 0, 0, 0, 0, false},
      {1, 10, 9, 2, 2, 3, 2, 1, 3, 2, 1, 2, 2, 0, true},
      {1, 7, 7, 2, 3, 2, 2, 2, 2, 3, 2, 2, 1, 1, false},
  };
  for (const Geo& g : dilated) {
    CAPTURE(g.H);
    Tensor x = random_tensor({g.N, g.H, g.W, g.C}, rng);
    Pool2dOptions o;
    o.stride_h = static_cast<int>(g.SH);
    o.stride_w = static_cast<int>(g.SW);
    o.dilation_h = static_cast<int>(g.DH);
    o.dilation_w = static_cast<int>(g.DW);
    o.padding = pads_of(g);
    o.ceil_mode = g.ceil_mode;
    int64_t OH = 0, OW = 0;
    const auto expected = naive_pool(g, x.to_vector_f64(), true, false, &OH, &OW);
    Tensor m = max_pool2d(x, static_cast<int>(g.KH), static_cast<int>(g.KW), o);
    REQUIRE(m.shape() == Shape{g.N, OH, OW, g.C});
    CHECK(max_abs_diff(m.to_vector_f64(), expected) == 0.0);
  }
}

TEST_CASE("Keras pooling calls keep their meaning: same average pooling excludes the padding") {
  Tensor x = Tensor::ones({1, 3, 3, 1}, DType::F64);
  // Every window averages ones: 1 everywhere when padding is excluded (Keras/TF).
  Tensor keras = avg_pool2d(x, 3, 3, 1, 1, Padding::Same);
  for (double v : keras.to_vector_f64()) CHECK(v == 1.0);
  // Counting the padding, the corner window holds 4 ones in 9 cells.
  Pool2dOptions o;
  o.padding = Padding2d::symmetric(1, 1);
  o.count_include_pad = true;
  CHECK(avg_pool2d(x, 3, 3, o).to_vector_f64()[0] == doctest::Approx(4.0 / 9.0));
}

TEST_CASE("conv and pooling options: clear errors for what does not fit") {
  Tensor x = Tensor::zeros({1, 6, 6, 4});
  Conv2dOptions o;
  o.groups = 3;
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({3, 3, 2, 6}), o),
                       doctest::Contains("do not split into 3 groups"), std::invalid_argument);
  o.groups = 2;
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({3, 3, 2, 5}), o),
                       doctest::Contains("5 output channels, which do not split into 2 groups"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({3, 3, 4, 6}), o),
                       doctest::Contains("input channels per group"), std::invalid_argument);
  o.groups = 0;
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({3, 3, 4, 6}), o),
                       doctest::Contains("groups must be positive"), std::invalid_argument);
  o.groups = 1;
  o.dilation_h = 3;  // a 3x3 kernel dilated 3 spans 7 rows: more than 6
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({3, 3, 4, 6}), o),
                       doctest::Contains("does not fit input"), std::invalid_argument);
  o.dilation_h = 0;
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({3, 3, 4, 6}), o),
                       doctest::Contains("dilation must be positive"), std::invalid_argument);

  Pool2dOptions p;
  p.dilation_h = 2;
  CHECK_THROWS_WITH_AS(avg_pool2d(x, 2, 2, p), doctest::Contains("max pooling only"),
                       std::invalid_argument);
  p = Pool2dOptions();
  p.count_include_pad = true;
  CHECK_THROWS_WITH_AS(max_pool2d(x, 2, 2, p), doctest::Contains("average pooling"),
                       std::invalid_argument);
  p = Pool2dOptions();
  p.padding = Padding2d::explicit_pads(0, 3, 0, 0);
  CHECK_THROWS_WITH_AS(max_pool2d(x, 3, 3, p), doctest::Contains("pool nothing"),
                       std::invalid_argument);
}
