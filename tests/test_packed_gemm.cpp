// The packed-B GEMM (tensor/cpu/packed_gemm.h) against a product written out as loops in double,
// with every epilogue combination, partial row tiles and column panels, several passes over k,
// and leading dimensions wider than the matrices, at both register widths (32 and 64 bytes,
// whichever this machine uses); then conv2d_bias_activation with a packed kernel against the
// composed ops, and the in-place convolution at the two widths against each other.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "support/gradcheck.h"
#include "tensor/autograd.h"
#include "tensor/cpu/packed_gemm.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"

using namespace glimpse;
using glimpse::testing::max_abs_diff;
using glimpse::testing::random_tensor;

namespace {

std::mt19937 rng(7);

template <class T>
std::vector<T> random_values(int64_t n) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(rng));
  return v;
}

struct Shape3 {
  int64_t M, N, K;
};

// Checks one product: C = relu?(A B + bias + residual) with A [M, K] in rows of lda, B [K, N] in
// rows of ldb, C and residual in rows of ldc. The expected values and their error bound are
// computed in double from the same inputs.
template <class T>
void check_product(const Shape3& s, int64_t pad, bool with_bias, bool with_residual, bool relu,
                   double tolerance, int threads = 1, int vector_bytes = 0) {
  CAPTURE(vector_bytes);
  CAPTURE(s.M);
  CAPTURE(s.N);
  CAPTURE(s.K);
  CAPTURE(with_bias);
  CAPTURE(with_residual);
  CAPTURE(relu);
  CAPTURE(threads);
  const int64_t lda = s.K + pad, ldb = s.N + pad, ldc = s.N + pad;
  const std::vector<T> A = random_values<T>(s.M * lda), B = random_values<T>(s.K * ldb);
  const std::vector<T> bias = random_values<T>(s.N), residual = random_values<T>(s.M * ldc);
  std::vector<T> packed(cpu::packed_b_size<T>(s.K, s.N, vector_bytes));
  cpu::pack_b(B.data(), ldb, s.K, s.N, packed.data(), vector_bytes);
  // C is never read: NaN in it must not reach the result, and the padding must stay untouched.
  const T sentinel = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> C(s.M * ldc, sentinel);
  cpu::gemm_packed_b(s.M, s.N, s.K, A.data(), lda, packed.data(), C.data(), ldc,
                     with_bias ? bias.data() : nullptr, with_residual ? residual.data() : nullptr,
                     relu, threads, vector_bytes);
  double worst = 0.0;
  bool padding_untouched = true;
  for (int64_t i = 0; i < s.M; ++i) {
    for (int64_t j = 0; j < s.N; ++j) {
      double expected = 0.0, magnitude = 0.0;
      for (int64_t k = 0; k < s.K; ++k) {
        expected += double(A[i * lda + k]) * double(B[k * ldb + j]);
        magnitude += std::fabs(double(A[i * lda + k]) * double(B[k * ldb + j]));
      }
      if (with_bias) expected += bias[j], magnitude += std::fabs(double(bias[j]));
      if (with_residual)
        expected += residual[i * ldc + j], magnitude += std::fabs(double(residual[i * ldc + j]));
      if (relu && expected < 0) expected = 0;
      const double got = C[i * ldc + j];
      const double error = std::isfinite(got) ? std::fabs(got - expected) / (1.0 + magnitude)
                                              : std::numeric_limits<double>::infinity();
      worst = std::max(worst, error);
    }
    for (int64_t j = s.N; j < ldc; ++j) padding_untouched &= std::isnan(double(C[i * ldc + j]));
  }
  CHECK(worst <= tolerance);
  CHECK(padding_untouched);
}

// Rows: whole and partial tiles (6 rows at 32 bytes, 12 at 64; the rows are dealt evenly among
// the tiles, 25 as 8 + 8 + 9). Columns: whole and partial panels (16 or 32 floats, 8 or 16
// doubles wide). Depth: none, one, within one pass of 256, exactly one, and several with a
// remainder.
const Shape3 kShapes[] = {{1, 1, 1},     {6, 16, 256}, {7, 17, 257},  {13, 40, 600},
                          {145, 48, 96}, {5, 8, 0},    {32, 33, 513}, {12, 3, 31},
                          {2, 100, 1},   {25, 64, 40}, {24, 32, 16}};
const int kWidths[] = {32, 64};

}  // namespace

TEST_CASE("gemm_packed_b equals the product written out as loops (float and double)") {
  for (const Shape3& s : kShapes) {
    for (int64_t pad : {0, 3}) {
      for (int epilogue = 0; epilogue < 8; ++epilogue) {
        const bool bias = epilogue & 1, residual = epilogue & 2, relu = epilogue & 4;
        for (int width : kWidths) {
          check_product<double>(s, pad, bias, residual, relu, 1e-14, 1, width);
          check_product<float>(s, pad, bias, residual, relu, 1e-6, 1, width);
        }
      }
    }
  }
}

TEST_CASE("gemm_packed_b: several row and column blocks, and the columns shared by threads") {
  // 400 rows are three blocks of rows, 300 columns two blocks of columns (19 panels in float, 38
  // in double, the last one partial), 600 deep three passes. With threads the panels are shared
  // unevenly (19 between 2, 3 and 4 threads), including more threads than panels.
  for (int epilogue : {0, 7}) {
    const bool bias = epilogue & 1, residual = epilogue & 2, relu = epilogue & 4;
    for (int width : kWidths) {
      for (int threads : {1, 2, 3, 4}) {
        check_product<float>({400, 300, 600}, 5, bias, residual, relu, 1e-6, threads, width);
        // 1 or 2 panels, 4 threads
        check_product<float>({7, 20, 33}, 0, bias, residual, relu, 1e-6, 4, width);
      }
      check_product<double>({400, 300, 600}, 0, bias, residual, relu, 1e-14, 3, width);
    }
  }
}

TEST_CASE("the packed GEMM's register width: the machine's choice is one of the two, and no other is accepted") {
  const int chosen = cpu::packed_gemm_vector_bytes();
  CHECK((chosen == 32 || chosen == 64));
  CHECK(cpu::packed_b_size<float>(10, 20) == cpu::packed_b_size<float>(10, 20, chosen));
  CHECK(cpu::packed_b_size<float>(10, 20, 32) == 10 * 32);  // 2 panels of 16
  CHECK(cpu::packed_b_size<float>(10, 20, 64) == 10 * 32);  // 1 panel of 32
  CHECK(cpu::packed_b_size<float>(10, 40, 64) == 10 * 64);
  CHECK_THROWS_WITH_AS(cpu::packed_b_size<float>(10, 20, 16), doctest::Contains("32 or 64"),
                       std::invalid_argument);
}

TEST_CASE("gemm_packed_b's ReLU lets NaN through, as the ReLU op does") {
  const int64_t M = 7, N = 20, K = 5;
  std::vector<float> A(M * K, 1.0f), B(K * N, -1.0f), bias(N, 0.0f), C(M * N);
  bias[3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> packed(cpu::packed_b_size<float>(K, N));
  cpu::pack_b(B.data(), N, K, N, packed.data());
  cpu::gemm_packed_b<float>(M, N, K, A.data(), K, packed.data(), C.data(), N, bias.data(), nullptr,
                            true);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      CAPTURE(j);
      if (j == 3) {
        CHECK(std::isnan(C[i * N + j]));
      } else {
        CHECK(C[i * N + j] == 0.0f);  // -5 through the ReLU
      }
    }
  }
}

TEST_CASE("conv2d_bias_activation with a packed kernel equals the composed ops") {
  struct Case {
    Shape x, kernel;
    int stride;
    Padding padding;
  };
  // Pointwise and windowed, strided, output channels that fill no panel, one panel, or leave a
  // partial one; 17x17 at batch 1 is split between the threads inside image rows. Windowed ones
  // with at least 16 input channels are read in place (cpu::conv_packed): passes over k that end
  // inside a window cell (3x3 on 40 channels: 2 passes of 180; 1x7 on 130: 4 passes), odd channel
  // counts, the asymmetric SAME padding of an even window, several images in one panel, more pixels
  // than one chunk of window positions (4096) in a panel. The others build patches.
  const Case cases[] = {{{1, 17, 17, 24}, {1, 1, 24, 40}, 1, Padding::Same},
                        {{2, 9, 11, 6}, {3, 3, 6, 5}, 2, Padding::Valid},
                        {{1, 17, 17, 10}, {1, 7, 10, 16}, 1, Padding::Same},
                        {{3, 8, 8, 20}, {7, 1, 20, 33}, 1, Padding::Same},
                        {{2, 13, 12, 40}, {3, 3, 40, 24}, 2, Padding::Valid},
                        {{1, 9, 17, 130}, {1, 7, 130, 20}, 1, Padding::Same},
                        {{2, 7, 9, 16}, {2, 2, 16, 17}, 1, Padding::Same},
                        {{1, 11, 10, 17}, {5, 5, 17, 48}, 2, Padding::Same},
                        {{1, 70, 70, 16}, {3, 3, 16, 8}, 1, Padding::Same}};  // 4900 pixels
  const int saved_threads = glimpse::parallel::num_threads();
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    glimpse::parallel::set_num_threads(threads);
    for (const Case& c : cases) {
      CAPTURE(shape_str(c.kernel));
      Tensor x = random_tensor(c.x, rng);
      Tensor w = random_tensor(c.kernel, rng);
      Tensor b = random_tensor({c.kernel[3]}, rng);
      Tensor y = conv2d(x, w, c.stride, c.stride, c.padding);
      Tensor residual = random_tensor(y.shape(), rng);
      const PackedConvKernel packed = pack_conv_kernel(w);
      NoGradGuard no_grad;
      for (bool relu_after : {false, true}) {
        Tensor expected = add(y, b);
        Tensor got = conv2d_bias_activation(x, packed, b, c.stride, c.stride, c.padding, relu_after);
        CHECK(max_abs_diff(got.to_vector_f64(),
                           (relu_after ? relu(expected) : expected).to_vector_f64()) <= 1e-12);
        expected = add(residual, expected);
        got = conv2d_bias_activation(x, packed, b, c.stride, c.stride, c.padding, relu_after,
                                     residual);
        CHECK(max_abs_diff(got.to_vector_f64(),
                           (relu_after ? relu(expected) : expected).to_vector_f64()) <= 1e-12);
      }
      // In float, against the unpacked fused op: two float sums of depth terms in [-1, 1] each.
      const double depth = static_cast<double>(c.kernel[0] * c.kernel[1] * c.kernel[2]);
      Tensor xf = x.to(DType::F32), wf = w.to(DType::F32), bf = b.to(DType::F32);
      Tensor unpacked = conv2d_bias_activation(xf, wf, bf, c.stride, c.stride, c.padding, true);
      Tensor got = conv2d_bias_activation(xf, pack_conv_kernel(wf), bf, c.stride, c.stride,
                                          c.padding, true);
      CHECK(max_abs_diff(got.to_vector_f64(), unpacked.to_vector_f64()) <= 2e-7 * depth + 1e-6);
    }
  }
  glimpse::parallel::set_num_threads(saved_threads);
}

TEST_CASE("the in-place convolution gives bit-identical results at both register widths") {
  // conv2d_bias_activation above runs this machine's width; here cpu::conv_packed runs both, on
  // windows whose passes end inside a cell and on rows that fill no 12-row tile.
  struct Case {
    Conv2dGeometry g;
    int64_t cout;
  };
  // N, H, W, C, KH, KW, SH, SW, pad top, pad left, OH, OW: 3x3 SAME, 1x7 SAME on two images,
  // 5x5 stride 2 with padding 2.
  const Case cases[] = {{{1, 17, 17, 40, 3, 3, 1, 1, 1, 1, 17, 17}, 50},
                        {{2, 9, 11, 130, 1, 7, 1, 1, 0, 3, 9, 11}, 20},
                        {{1, 13, 12, 17, 5, 5, 2, 2, 2, 2, 7, 6}, 33}};
  for (const Case& c : cases) {
    const Conv2dGeometry& g = c.g;
    CAPTURE(g.KH);
    const int64_t depth = g.KH * g.KW * g.C, pixels = g.N * g.OH * g.OW;
    const std::vector<double> x = random_values<double>(g.N * g.H * g.W * g.C);
    const std::vector<double> kernel = random_values<double>(depth * c.cout);
    const std::vector<double> bias = random_values<double>(c.cout);
    std::vector<double> results[2];
    for (int i = 0; i < 2; ++i) {
      const int width = kWidths[i];
      std::vector<double> packed(cpu::packed_b_size<double>(depth, c.cout, width));
      cpu::pack_b(kernel.data(), c.cout, depth, c.cout, packed.data(), width);
      results[i].assign(pixels * c.cout, std::numeric_limits<double>::quiet_NaN());
      cpu::conv_packed<double>(x.data(), g, 0, pixels, c.cout, packed.data(), results[i].data(),
                               c.cout, bias.data(), nullptr, true, 2, width);
    }
    // Not just close: each output is the same sum in the same order at either width (the same
    // passes over k, the bias and residual added last), so the results are bit-identical.
    CHECK(results[0] == results[1]);
    bool some_positive = false;
    for (double v : results[1]) some_positive |= v > 0;
    CHECK(some_positive);  // not all zeros through the ReLU
  }
}

TEST_CASE("conv2d_bias_activation with a packed kernel rejects what it cannot do") {
  Tensor x = Tensor::zeros({1, 4, 4, 3});
  const PackedConvKernel packed = pack_conv_kernel(Tensor::zeros({3, 3, 3, 2}));
  CHECK_THROWS_WITH_AS(
      conv2d_bias_activation(Tensor::zeros({1, 4, 4, 5}), packed, Tensor::zeros({2}), 1, 1,
                             Padding::Same, true),
      doctest::Contains("expects 3 input channels"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d_bias_activation(x, packed, Tensor::zeros({3}), 1, 1, Padding::Same, true),
                       doctest::Contains("bias must be [2]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d_bias_activation(x.to(DType::F64), packed, Tensor::zeros({2}), 1, 1,
                                              Padding::Same, true),
                       doctest::Contains("dtype"), std::invalid_argument);
  Tensor xg = x.clone().set_requires_grad(true);
  CHECK_THROWS_WITH_AS(conv2d_bias_activation(xg, packed, Tensor::zeros({2}), 1, 1, Padding::Same, true),
                       doctest::Contains("for inference"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d_bias_activation(x, PackedConvKernel{}, Tensor::zeros({2}), 1, 1,
                                              Padding::Same, true),
                       doctest::Contains("empty"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(pack_conv_kernel(Tensor::zeros({3, 3})), doctest::Contains("(kh, kw, cin, cout)"),
                       std::invalid_argument);
  // The in-place kernel itself refuses a geometry it has no room for (the op builds patches then).
  Conv2dGeometry thin{1, 4, 4, 8, 3, 3, 1, 1, 1, 1, 4, 4};
  std::vector<float> in(4 * 4 * 8), kernel_packed(cpu::packed_b_size<float>(72, 2)), out(16 * 2);
  CHECK_THROWS_WITH_AS(cpu::conv_packed<float>(in.data(), thin, 0, 16, 2, kernel_packed.data(),
                                               out.data(), 2, nullptr, nullptr, false),
                       doctest::Contains("fewer than 16"), std::invalid_argument);
  PackedConvKernel mislabelled = packed;
  mislabelled.kernel_shape = {3, 3, 3, 40};  // more output channels than were packed
  CHECK_THROWS_WITH_AS(conv2d_bias_activation(x, mislabelled, Tensor::zeros({40}), 1, 1,
                                              Padding::Same, true),
                       doctest::Contains("is not the packed form"), std::invalid_argument);
}
