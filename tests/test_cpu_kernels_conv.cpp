// CPU backend: NHWC convolution as im2col + GEMM against a naive direct convolution (SAME with
// asymmetric padding, VALID, strides 1 and 2, non-square windows), col2im as the exact adjoint of
// im2col, max/avg pooling vs naive loops, and pooling backward by finite differences in double.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "test_cpu_kernels_util.h"

using namespace glimpse;
using namespace glimpse::test;

namespace {

// TF padding rules, written out here independently of the ops layer:
// SAME: out = ceil(in / s), total = max(0, (out - 1) * s + k - in), before = total / 2.
// VALID: out = (in - k) / s + 1, no padding.
Conv2dGeometry make_geometry(int64_t N, int64_t H, int64_t W, int64_t C, int64_t KH, int64_t KW,
                             int64_t SH, int64_t SW, bool same) {
  Conv2dGeometry g{N, H, W, C, KH, KW, SH, SW, 0, 0, 0, 0};
  if (same) {
    g.OH = (H + SH - 1) / SH;
    g.OW = (W + SW - 1) / SW;
    g.pad_top = std::max<int64_t>(0, (g.OH - 1) * SH + KH - H) / 2;
    g.pad_left = std::max<int64_t>(0, (g.OW - 1) * SW + KW - W) / 2;
  } else {
    g.OH = (H - KH) / SH + 1;
    g.OW = (W - KW) / SW + 1;
  }
  return g;
}

struct ConvCase {
  int64_t N, H, W, C, KH, KW, SH, SW;
  bool same;
};

const ConvCase kConvCases[] = {
    {2, 6, 6, 3, 3, 3, 2, 2, true},     // SAME, pad 0 before / 1 after
    {2, 5, 5, 3, 2, 2, 1, 1, true},     // SAME, even window: pad 0 / 1
    {1, 7, 5, 2, 3, 3, 1, 1, true},     // SAME, pad 1 / 1, H != W
    {2, 7, 6, 3, 3, 3, 2, 2, false},    // VALID, stride 2
    {1, 9, 9, 4, 3, 3, 2, 2, false},    // VALID, odd size
    {1, 8, 8, 3, 1, 7, 1, 1, true},     // 1x7 (Inception-ResNet block)
    {1, 8, 8, 3, 7, 1, 1, 1, true},     // 7x1
    {2, 4, 4, 5, 1, 1, 2, 2, true},     // 1x1, stride 2
    {1, 10, 10, 2, 4, 4, 3, 3, true},   // SAME, pad 1 / 2
    {1, 5, 4, 2, 5, 5, 1, 1, true},     // window as large as the image
    {1, 6, 7, 3, 3, 2, 2, 1, false},    // mixed strides and window sides
    {2, 17, 17, 16, 3, 3, 1, 1, true},  // large enough to run in parallel
};

std::string describe(const ConvCase& c) {
  return "N" + std::to_string(c.N) + " H" + std::to_string(c.H) + " W" + std::to_string(c.W) +
         " C" + std::to_string(c.C) + " k" + std::to_string(c.KH) + "x" + std::to_string(c.KW) +
         " s" + std::to_string(c.SH) + "x" + std::to_string(c.SW) + (c.same ? " SAME" : " VALID");
}

}  // namespace

TEST_CASE("conv via im2col + gemm matches a direct NHWC convolution") {
  for (const ConvCase& c : kConvCases) {
    const Conv2dGeometry g = make_geometry(c.N, c.H, c.W, c.C, c.KH, c.KW, c.SH, c.SW, c.same);
    const int64_t CO = 4;
    const auto x = random_vector<float>(c.N * c.H * c.W * c.C, 51);
    const auto w = random_vector<float>(c.KH * c.KW * c.C * CO, 52);  // Keras (kh, kw, cin, cout)

    std::vector<double> expected(c.N * g.OH * g.OW * CO, 0.0);
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow)
          for (int64_t co = 0; co < CO; ++co) {
            double s = 0;
            for (int64_t kh = 0; kh < c.KH; ++kh)
              for (int64_t kw = 0; kw < c.KW; ++kw) {
                const int64_t ih = oh * c.SH - g.pad_top + kh, iw = ow * c.SW - g.pad_left + kw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;  // zero padding
                for (int64_t ci = 0; ci < c.C; ++ci) {
                  s += double(x[((n * c.H + ih) * c.W + iw) * c.C + ci]) *
                       double(w[((kh * c.KW + kw) * c.C + ci) * CO + co]);
                }
              }
            expected[((n * g.OH + oh) * g.OW + ow) * CO + co] = s;
          }

    const int64_t rows = c.N * g.OH * g.OW, depth = c.KH * c.KW * c.C;
    std::vector<float> cols(rows * depth, std::numeric_limits<float>::quiet_NaN()), y(rows * CO);
    kf().im2col(x.data(), cols.data(), g);
    kf().gemm(false, false, rows, CO, depth, 1.0f, cols.data(), depth, w.data(), CO, 0.0f, y.data(), CO);
    INFO(describe(c) << " -> OH" << g.OH << " OW" << g.OW << " pad " << g.pad_top << "," << g.pad_left);
    CHECK(max_abs_diff(y, std::vector<float>(expected.begin(), expected.end())) <= 1e-4);
  }
}

TEST_CASE("col2im is the adjoint of im2col and accumulates") {
  for (const ConvCase& c : kConvCases) {
    const Conv2dGeometry g = make_geometry(c.N, c.H, c.W, c.C, c.KH, c.KW, c.SH, c.SW, c.same);
    const int64_t image_size = c.N * c.H * c.W * c.C;
    const int64_t cols_size = c.N * g.OH * g.OW * c.KH * c.KW * c.C;
    const auto x = random_vector<double>(image_size, 53);
    const auto y = random_vector<double>(cols_size, 54);
    std::vector<double> cols(cols_size), gx(image_size, 0.0);
    kd().im2col(x.data(), cols.data(), g);
    kd().col2im(y.data(), gx.data(), g);
    INFO(describe(c));
    CHECK(dot(cols, y) == doctest::Approx(dot(x, gx)).epsilon(1e-12));
    // Accumulates: a second call doubles gx.
    auto twice = gx;
    kd().col2im(y.data(), twice.data(), g);
    for (auto& v : gx) v *= 2;
    CHECK(max_abs_diff(twice, gx) <= 1e-12);
  }
}

namespace {

void naive_pool(const Conv2dGeometry& g, const std::vector<double>& x, bool max,
                std::vector<double>& y, std::vector<int32_t>& arg) {
  y.assign(g.N * g.OH * g.OW * g.C, 0.0);
  arg.assign(y.size(), -1);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        for (int64_t c = 0; c < g.C; ++c) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int32_t best_index = -1;
          int count = 0;
          for (int64_t kh = 0; kh < g.KH; ++kh)
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t ih = oh * g.SH - g.pad_top + kh, iw = ow * g.SW - g.pad_left + kw;
              const bool padded = ih < 0 || ih >= g.H || iw < 0 || iw >= g.W;
              if (padded) continue;  // -inf for max, excluded from the average
              const int32_t flat = int32_t((ih * g.W + iw) * g.C + c);
              const double v = x[n * g.H * g.W * g.C + flat];
              if (v > best) {
                best = v;
                best_index = flat;
              }
              sum += v;
              ++count;
            }
          const int64_t o = ((n * g.OH + oh) * g.OW + ow) * g.C + c;
          y[o] = max ? best : sum / count;
          arg[o] = best_index;
        }
}

}  // namespace

TEST_CASE("max_pool and avg_pool match naive loops") {
  for (const ConvCase& c : kConvCases) {
    const Conv2dGeometry g = make_geometry(c.N, c.H, c.W, c.C, c.KH, c.KW, c.SH, c.SW, c.same);
    auto x = random_vector<double>(c.N * c.H * c.W * c.C, 55, -3.0, -1.0);  // all negative: padding must not win
    x[0] = x[1];                                                            // a tie
    std::vector<double> expected;
    std::vector<int32_t> expected_arg;
    std::vector<double> y(c.N * g.OH * g.OW * c.C);
    std::vector<int32_t> arg(y.size());
    INFO(describe(c));
    naive_pool(g, x, true, expected, expected_arg);
    kd().max_pool(x.data(), y.data(), arg.data(), g);
    CHECK(y == expected);
    CHECK(arg == expected_arg);
    std::fill(y.begin(), y.end(), 0.0);
    kd().max_pool(x.data(), y.data(), nullptr, g);  // inference: no argmax
    CHECK(y == expected);
    const std::vector<float> xf32(x.begin(), x.end()), expected_f32(expected.begin(), expected.end());
    std::vector<float> yf32(y.size());
    kf().max_pool(xf32.data(), yf32.data(), nullptr, g);
    CHECK(yf32 == expected_f32);
    // With a NaN in the input, both paths take it the same way (the first NaN wins).
    std::vector<float> with_nan = xf32, y_indexed(y.size()), y_plain(y.size());
    std::vector<int32_t> arg_f32(y.size());
    with_nan[with_nan.size() / 2] = std::numeric_limits<float>::quiet_NaN();
    kf().max_pool(with_nan.data(), y_indexed.data(), arg_f32.data(), g);
    kf().max_pool(with_nan.data(), y_plain.data(), nullptr, g);
    CHECK(std::memcmp(y_indexed.data(), y_plain.data(), y_plain.size() * sizeof(float)) == 0);
    CHECK(std::count_if(y_plain.begin(), y_plain.end(), [](float v) { return v != v; }) > 0);
    naive_pool(g, x, false, expected, expected_arg);
    kd().avg_pool(x.data(), y.data(), g);
    CHECK(max_abs_diff(y, expected) <= 1e-14);

    std::vector<float> xf(x.begin(), x.end()), yf(y.size());
    kf().avg_pool(xf.data(), yf.data(), g);
    CHECK(max_abs_diff(yf, std::vector<float>(expected.begin(), expected.end())) <= 1e-5);
  }
}

TEST_CASE("avg_pool 3x3 stride 1 SAME divides by 4 / 6 / 9 real cells") {
  const Conv2dGeometry g = make_geometry(1, 4, 4, 1, 3, 3, 1, 1, true);
  std::vector<float> x(16, 0.0f), y(16);
  x[0] = 36.0f;  // a single pixel at the corner
  kf().avg_pool(x.data(), y.data(), g);
  CHECK(y[0] == doctest::Approx(9.0f));  // corner window: 4 real cells
  CHECK(y[1] == doctest::Approx(6.0f));  // edge window: 6 real cells
  CHECK(y[5] == doctest::Approx(4.0f));  // interior window: 9 real cells
  CHECK(y[2] == 0.0f);
  std::fill(x.begin(), x.end(), 1.0f);
  kf().avg_pool(x.data(), y.data(), g);
  CHECK(std::count(y.begin(), y.end(), 1.0f) == 16);
}

TEST_CASE("max_pool / avg_pool backward: finite differences in double") {
  for (const ConvCase& c : kConvCases) {
    const Conv2dGeometry g = make_geometry(c.N, c.H, c.W, c.C, c.KH, c.KW, c.SH, c.SW, c.same);
    const int64_t in_size = c.N * c.H * c.W * c.C, out_size = c.N * g.OH * g.OW * c.C;
    if (in_size > 2000) continue;  // finite differences cost two forward passes per input
    // Distinct values 0.01 apart, so a 1e-5 step never changes which cell is the maximum.
    std::vector<double> x(in_size);
    std::iota(x.begin(), x.end(), 0.0);
    std::shuffle(x.begin(), x.end(), std::mt19937(56));
    for (auto& v : x) v *= 0.01;
    const auto w = random_vector(out_size, 57);
    std::vector<double> y(out_size), gx(in_size, 123.0);
    std::vector<int32_t> arg(out_size);
    INFO(describe(c));

    kd().max_pool(x.data(), y.data(), arg.data(), g);
    kd().max_pool_backward(w.data(), arg.data(), gx.data(), g);
    check_gradient("max_pool", x, gx, [&] {
      kd().max_pool(x.data(), y.data(), arg.data(), g);
      return dot(y, w);
    });

    std::fill(gx.begin(), gx.end(), 123.0);  // the backward must overwrite, not accumulate
    kd().avg_pool_backward(w.data(), gx.data(), g);
    check_gradient("avg_pool", x, gx, [&] {
      kd().avg_pool(x.data(), y.data(), g);
      return dot(y, w);
    });
  }
}
