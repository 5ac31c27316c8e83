// CPU backend: reductions over [outer, R, inner] (vs naive loops, and bit-identical for any thread
// count; products and their backward also with zeros), softmax / log-softmax / fused cross-entropy
// (forward vs naive, backward by finite differences in double), argmax and top-k including ties.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "test_cpu_kernels_util.h"
#include "tensor/parallel.h"

using namespace glimpse;
using namespace glimpse::test;

namespace {

struct ReduceShape {
  int64_t outer, R, inner;
};
// Small, narrow-and-tall (bias gradient), wide (column-chunked), long rows, many slices.
const ReduceShape kReduceShapes[] = {{1, 1, 1},      {3, 5, 7},     {1, 70000, 1}, {1, 5000, 33},
                                     {2, 40, 3000},  {300, 257, 1}, {7, 1, 9},     {64, 100, 5},
                                     {1, 20000, 3}};

}  // namespace

TEST_CASE("reduce_sum matches a naive loop") {
  for (auto s : kReduceShapes) {
    const auto x = random_vector<double>(s.outer * s.R * s.inner, 31);
    std::vector<double> y(s.outer * s.inner), expected(s.outer * s.inner, 0.0);
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t i = 0; i < s.inner; ++i) expected[o * s.inner + i] += x[(o * s.R + r) * s.inner + i];
    kd().reduce_sum(x.data(), y.data(), s.outer, s.R, s.inner);
    INFO("outer " << s.outer << " R " << s.R << " inner " << s.inner);
    CHECK(max_abs_diff(y, expected) <= 1e-10);

    std::vector<float> xf(x.begin(), x.end()), yf(y.size());
    kf().reduce_sum(xf.data(), yf.data(), s.outer, s.R, s.inner);
    CHECK(max_abs_diff(yf, std::vector<float>(expected.begin(), expected.end())) <= 1e-5 * std::sqrt(double(s.R)) + 1e-5);
  }
}

TEST_CASE("reductions are bit-identical for 1, 2, 3 and the default number of threads") {
  const int threads = glimpse::parallel::num_threads();
  for (auto s : kReduceShapes) {
    const auto x = random_vector<float>(s.outer * s.R * s.inner, 32);
    std::vector<std::vector<float>> results;
    for (int t : {1, 2, 3, threads}) {
      glimpse::parallel::set_num_threads(t);
      std::vector<float> y(s.outer * s.inner);
      kf().reduce_sum(x.data(), y.data(), s.outer, s.R, s.inner);
      results.push_back(y);
    }
    INFO("outer " << s.outer << " R " << s.R << " inner " << s.inner);
    CHECK(results[0] == results[1]);
    CHECK(results[0] == results[2]);
    CHECK(results[0] == results[3]);
  }
  // Batch-norm statistics use the same blocked column sums.
  const int64_t N = 50000, C = 7;
  const auto x = random_vector<float>(N * C, 33, 0.0, 5.0);
  std::vector<std::vector<float>> stats;
  for (int t : {1, 2, 3, threads}) {
    glimpse::parallel::set_num_threads(t);
    std::vector<float> mean(C), var(C);
    kf().batch_norm_stats(x.data(), mean.data(), var.data(), N, C);
    mean.insert(mean.end(), var.begin(), var.end());
    stats.push_back(mean);
  }
  glimpse::parallel::set_num_threads(threads);
  CHECK(stats[0] == stats[1]);
  CHECK(stats[0] == stats[2]);
  CHECK(stats[0] == stats[3]);
}

namespace {

// Product of x[o, k, i] over k != skip (skip = -1: over every k), the definition, O(R) per call.
double naive_product(const std::vector<double>& x, ReduceShape s, int64_t o, int64_t i,
                     int64_t skip = -1) {
  double p = 1.0;
  for (int64_t k = 0; k < s.R; ++k)
    if (k != skip) p *= x[(o * s.R + k) * s.inner + i];
  return p;
}

}  // namespace

TEST_CASE("reduce_prod matches a naive loop, float and double, and is thread-count independent") {
  // Values near 1 so that products over tens of thousands of terms neither underflow nor overflow.
  for (auto s : kReduceShapes) {
    INFO("outer " << s.outer << " R " << s.R << " inner " << s.inner);
    const auto x = random_vector<double>(s.outer * s.R * s.inner, 36, 0.97, 1.03);
    std::vector<double> y(s.outer * s.inner), expected(y.size());
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < s.inner; ++i) expected[o * s.inner + i] = naive_product(x, s, o, i);
    kd().reduce_prod(x.data(), y.data(), s.outer, s.R, s.inner);
    CHECK(max_rel_diff(y, expected) <= 1e-12);

    std::vector<float> xf(x.begin(), x.end()), yf(y.size());
    kf().reduce_prod(xf.data(), yf.data(), s.outer, s.R, s.inner);
    double worst = 0;  // relative to each product: they range over many orders of magnitude
    for (size_t j = 0; j < yf.size(); ++j)
      worst = std::max(worst, std::abs(double(yf[j]) - expected[j]) / std::abs(expected[j]));
    CHECK(worst <= 1e-6 * std::sqrt(double(s.R)) + 1e-6);

    const int threads = glimpse::parallel::num_threads();
    std::vector<float> one_thread(y.size());
    glimpse::parallel::set_num_threads(1);
    kf().reduce_prod(xf.data(), one_thread.data(), s.outer, s.R, s.inner);
    glimpse::parallel::set_num_threads(threads);
    CHECK(one_thread == yf);
  }
  // An empty product is 1; a zero or a NaN anywhere in the column reaches the result.
  std::vector<double> y(3, -1.0);
  kd().reduce_prod(nullptr, y.data(), 3, 0, 1);
  CHECK(y == std::vector<double>{1.0, 1.0, 1.0});
  const std::vector<double> x = {2.0, 3.0, 0.0, std::nan(""), 4.0, 5.0};  // [1, 3, 2]
  std::vector<double> y2(2);
  kd().reduce_prod(x.data(), y2.data(), 1, 3, 2);
  CHECK(y2[0] == 0.0);
  CHECK(std::isnan(y2[1]));
}

TEST_CASE("reduce_prod_backward: the product of the others, also with one and two zeros") {
  const ReduceShape shapes[] = {{1, 1, 1}, {3, 5, 7}, {2, 6, 1}, {4, 3, 300}, {1, 200, 2}};
  for (auto s : shapes) {
    INFO("outer " << s.outer << " R " << s.R << " inner " << s.inner);
    auto x = random_vector<double>(s.outer * s.R * s.inner, 37, -1.5, 1.5);
    // Column i = 0 of every slice holds one zero, column 1 two zeros (where R allows).
    for (int64_t o = 0; o < s.outer; ++o) {
      x[(o * s.R + s.R / 2) * s.inner] = 0.0;
      if (s.inner > 1 && s.R >= 2) {
        x[(o * s.R + 0) * s.inner + 1] = 0.0;
        x[(o * s.R + s.R - 1) * s.inner + 1] = 0.0;
      }
    }
    const auto gy = random_vector<double>(s.outer * s.inner, 38);
    std::vector<double> gx(x.size(), 99.0), expected(x.size());
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t i = 0; i < s.inner; ++i)
          expected[(o * s.R + r) * s.inner + i] =
              gy[o * s.inner + i] * naive_product(x, s, o, i, r);
    kd().reduce_prod_backward(x.data(), gy.data(), gx.data(), s.outer, s.R, s.inner);
    CHECK(max_rel_diff(gx, expected) <= 1e-12);
    // A column with one zero has exactly one non-zero gradient (at the zero) when R > 1.
    if (s.R > 1) {
      CHECK(gx[(0 * s.R + s.R / 2) * s.inner] != 0.0);
      CHECK(gx[(0 * s.R + (s.R / 2 + 1) % s.R) * s.inner] == 0.0);
    }

    std::vector<float> xf(x.begin(), x.end()), gyf(gy.begin(), gy.end()), gxf(x.size());
    kf().reduce_prod_backward(xf.data(), gyf.data(), gxf.data(), s.outer, s.R, s.inner);
    CHECK(max_rel_diff(gxf, std::vector<float>(expected.begin(), expected.end())) <= 1e-5);

    if (x.size() > 2000) continue;  // finite differences: a product is linear in each element
    std::vector<double> y(gy.size());
    check_gradient("reduce_prod", x, gx, [&] {
      kd().reduce_prod(x.data(), y.data(), s.outer, s.R, s.inner);
      return dot(y, gy);
    });
  }
}

TEST_CASE("reduce_max and its backward") {
  for (auto s : kReduceShapes) {
    auto x = random_vector<double>(s.outer * s.R * s.inner, 34);
    // Plant ties in even columns (a copy of the maximum further along R must not win) and the
    // maximum at the last position of R in odd columns.
    if (s.R >= 3) {
      for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) {
          if (i % 2 == 0) {
            x[(o * s.R + 0) * s.inner + i] = 5.0;
            x[(o * s.R + 2) * s.inner + i] = 5.0;
          } else {
            x[(o * s.R + s.R - 1) * s.inner + i] = 6.0;
          }
        }
    }
    std::vector<double> y(s.outer * s.inner);
    std::vector<int32_t> arg(s.outer * s.inner);
    kd().reduce_max(x.data(), y.data(), arg.data(), s.outer, s.R, s.inner);
    int64_t wrong = 0;
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < s.inner; ++i) {
        double best = -std::numeric_limits<double>::infinity();
        int32_t best_r = -1;
        for (int64_t r = 0; r < s.R; ++r) {
          const double v = x[(o * s.R + r) * s.inner + i];
          if (v > best) {
            best = v;
            best_r = int32_t(r);
          }
        }
        wrong += y[o * s.inner + i] != best || arg[o * s.inner + i] != best_r;
      }
    INFO("outer " << s.outer << " R " << s.R << " inner " << s.inner);
    CHECK(wrong == 0);

    const auto gy = random_vector<double>(s.outer * s.inner, 35);
    std::vector<double> gx(x.size(), 99.0), expected(x.size(), 0.0);
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < s.inner; ++i)
        expected[(o * s.R + arg[o * s.inner + i]) * s.inner + i] = gy[o * s.inner + i];
    kd().reduce_max_backward(gy.data(), arg.data(), gx.data(), s.outer, s.R, s.inner);
    CHECK(gx == expected);
  }
  // NaN is not hidden by the maximum.
  std::vector<float> x = {1.0f, std::nanf(""), 3.0f}, y(1);
  std::vector<int32_t> arg(1);
  kf().reduce_max(x.data(), y.data(), arg.data(), 1, 3, 1);
  CHECK(std::isnan(y[0]));
  CHECK(arg[0] == 1);
}

TEST_CASE("softmax and log-softmax: forward vs naive, stable for large logits") {
  const int64_t rows = 37, cols = 301;
  auto x = random_vector<double>(rows * cols, 41, -5.0, 5.0);
  x[0] = 1000.0;  // would overflow exp() without the max subtraction
  x[cols + 3] = -1000.0;
  for (bool log : {false, true}) {
    std::vector<double> y(rows * cols), expected(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -1e300;
      for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, x[r * cols + c]);
      double sum = 0;
      for (int64_t c = 0; c < cols; ++c) sum += std::exp(x[r * cols + c] - mx);
      for (int64_t c = 0; c < cols; ++c) {
        const double shifted = x[r * cols + c] - mx;
        expected[r * cols + c] = log ? shifted - std::log(sum) : std::exp(shifted) / sum;
      }
    }
    kd().softmax(x.data(), y.data(), rows, cols, log);
    CHECK(max_abs_diff(y, expected) <= 1e-12);
    std::vector<float> xf(x.begin(), x.end()), yf(y.size());
    kf().softmax(xf.data(), yf.data(), rows, cols, log);
    CHECK(max_rel_diff(yf, std::vector<float>(expected.begin(), expected.end())) <= 2e-6);
  }
}

TEST_CASE("log-softmax and cross-entropy of logits around 1e4 are exact to float rounding") {
  // The ONNX backend test test_logsoftmax_large_number: logits in the thousands, where
  // x - (max + log_sum) loses the bits that max + log_sum rounds away (an error of 2.4e-4).
  const std::vector<float> x = {10000.0f, 10001.0f, 10002.0f, 10003.0f, 10000.5f, 9999.25f,
                                -1.0f,    0.0f,     1.0f,     2.0f,     3.0f,     4.0f};
  const int64_t rows = 2, cols = 6;
  std::vector<float> y(x.size()), loss(rows), valid(rows);
  kf().softmax(x.data(), y.data(), rows, cols, true);
  const std::vector<int32_t> targets = {4, 0};
  kf().cross_entropy(x.data(), targets.data(), loss.data(), valid.data(), rows, cols, -100);
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -1e300, sum = 0;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, double(x[r * cols + c]));
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(double(x[r * cols + c]) - mx);
    for (int64_t c = 0; c < cols; ++c) {
      const double exact = (double(x[r * cols + c]) - mx) - std::log(sum);
      CHECK(std::abs(y[r * cols + c] - exact) <= 2e-6);
    }
    const double exact_loss = std::log(sum) - (double(x[r * cols + targets[r]]) - mx);
    CHECK(std::abs(loss[r] - exact_loss) <= 2e-6);
  }
}

TEST_CASE("softmax_backward / log-softmax backward: finite differences") {
  const int64_t rows = 4, cols = 6;
  for (bool log : {false, true}) {
    auto x = random_vector(rows * cols, 42, -2.0, 2.0);
    const auto w = random_vector(rows * cols, 43);
    std::vector<double> y(rows * cols), gx(rows * cols), scratch(rows * cols);
    kd().softmax(x.data(), y.data(), rows, cols, log);
    kd().softmax_backward(y.data(), w.data(), gx.data(), rows, cols, log);
    check_gradient(log ? "log_softmax" : "softmax", x, gx, [&] {
      kd().softmax(x.data(), scratch.data(), rows, cols, log);
      return dot(scratch, w);
    });
  }
}

TEST_CASE("cross_entropy: forward vs naive, ignored rows, backward by finite differences") {
  const int64_t rows = 6, cols = 9;
  const int32_t ignore = 0;  // the captioning loss masks the padding token 0
  auto logits = random_vector(rows * cols, 44, -3.0, 3.0);
  const std::vector<int32_t> targets = {3, 0, 8, 1, 0, 5};
  std::vector<double> loss(rows), valid(rows);
  kd().cross_entropy(logits.data(), targets.data(), loss.data(), valid.data(), rows, cols, ignore);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(logits[r * cols + c]);
    const bool ignored = targets[r] == ignore;
    CHECK(valid[r] == (ignored ? 0.0 : 1.0));
    CHECK(loss[r] == doctest::Approx(ignored ? 0.0 : std::log(sum) - logits[r * cols + targets[r]]).epsilon(1e-12));
  }
  const auto gloss = random_vector(rows, 45);
  std::vector<double> glogits(rows * cols, 7.0);
  kd().cross_entropy_backward(logits.data(), targets.data(), gloss.data(), glogits.data(), rows, cols, ignore);
  for (int64_t c = 0; c < cols; ++c) CHECK(glogits[1 * cols + c] == 0.0);
  std::vector<double> scratch_loss(rows), scratch_valid(rows);
  check_gradient("cross_entropy", logits, glogits, [&] {
    kd().cross_entropy(logits.data(), targets.data(), scratch_loss.data(), scratch_valid.data(), rows, cols, ignore);
    return dot(scratch_loss, gloss);
  });
  // Large logits stay finite (float).
  std::vector<float> big = {1000.0f, 0.0f, -1000.0f}, l(1), v(1);
  const int32_t t = 1;
  kf().cross_entropy(big.data(), &t, l.data(), v.data(), 1, 3, -100);
  CHECK(l[0] == doctest::Approx(1000.0f));
}

TEST_CASE("argmax_rows and topk_rows: order and ties") {
  const std::vector<float> x = {1, 3, 3, 2, 3,     // ties: the lower index first
                                -1, -5, -0.5, -7, -2,  // all negative
                                4, 4, 4, 4, 4};        // all equal
  std::vector<int32_t> idx(3);
  kf().argmax_rows(x.data(), idx.data(), 3, 5);
  CHECK(idx == std::vector<int32_t>{1, 2, 0});
  std::vector<float> values(9);
  std::vector<int32_t> top(9);
  kf().topk_rows(x.data(), values.data(), top.data(), 3, 5, 3);
  CHECK(top == std::vector<int32_t>{1, 2, 4, 2, 0, 4, 0, 1, 2});
  CHECK(values == std::vector<float>{3, 3, 3, -0.5f, -1, -2, 4, 4, 4});

  // Random rows against a full stable sort.
  const int64_t rows = 50, cols = 1000, k = 7;
  auto data = random_vector<float>(rows * cols, 46);
  for (auto& v : data) v = std::round(v * 20) / 20;  // many ties
  std::vector<float> vals(rows * k);
  std::vector<int32_t> ids(rows * k), arg(rows);
  kf().topk_rows(data.data(), vals.data(), ids.data(), rows, cols, k);
  kf().argmax_rows(data.data(), arg.data(), rows, cols);
  int64_t wrong = 0;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int32_t> order(cols);
    for (int32_t c = 0; c < cols; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return data[r * cols + a] > data[r * cols + b]; });
    for (int64_t j = 0; j < k; ++j) {
      wrong += ids[r * k + j] != order[j] || vals[r * k + j] != data[r * cols + order[j]];
    }
    wrong += arg[r] != order[0];
  }
  CHECK(wrong == 0);
}
