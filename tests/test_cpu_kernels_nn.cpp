// CPU backend: fused NN kernels — layer norm, batch norm (training and inference, with and without
// gamma), one GRU step (forward vs the Keras formulas, backward by finite differences), and the
// embedding gather / scatter-add with repeated indices.
#include <doctest/doctest.h>

#include <cmath>

#include "test_cpu_kernels_util.h"

using namespace glimpse;
using namespace glimpse::test;

TEST_CASE("layer_norm: forward vs naive, backward by finite differences") {
  const int64_t rows = 5, cols = 8;
  const double eps = 1e-3;
  auto x = random_vector(rows * cols, 61, -2.0, 3.0);
  auto gamma = random_vector(cols, 62, 0.5, 1.5);
  auto beta = random_vector(cols, 63);
  const auto w = random_vector(rows * cols, 64);
  std::vector<double> y(rows * cols), mean(rows), rstd(rows);
  kd().layer_norm(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rows, cols, eps);
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < cols; ++c) m += x[r * cols + c] / cols;
    for (int64_t c = 0; c < cols; ++c) v += (x[r * cols + c] - m) * (x[r * cols + c] - m) / cols;
    CHECK(mean[r] == doctest::Approx(m).epsilon(1e-13));
    CHECK(rstd[r] == doctest::Approx(1 / std::sqrt(v + eps)).epsilon(1e-13));
    for (int64_t c = 0; c < cols; ++c) {
      CHECK(y[r * cols + c] ==
            doctest::Approx((x[r * cols + c] - m) / std::sqrt(v + eps) * gamma[c] + beta[c]).epsilon(1e-12));
    }
  }
  std::vector<double> gx(rows * cols), ggamma(cols), gbeta(cols), scratch(rows * cols), sm(rows), sr(rows);
  kd().layer_norm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), w.data(), gx.data(),
                           ggamma.data(), gbeta.data(), rows, cols);
  auto loss = [&] {
    kd().layer_norm(x.data(), gamma.data(), beta.data(), scratch.data(), sm.data(), sr.data(), rows, cols, eps);
    return dot(scratch, w);
  };
  check_gradient("layer_norm x", x, gx, loss);
  check_gradient("layer_norm gamma", gamma, ggamma, loss);
  check_gradient("layer_norm beta", beta, gbeta, loss);
}

TEST_CASE("layer_norm: wide rows, float, parallel parameter-gradient sums") {
  const int64_t rows = 300, cols = 2500;  // wide enough for the column-chunked sums
  const auto x = random_vector<float>(rows * cols, 65);
  const auto gy = random_vector<float>(rows * cols, 66);
  const auto gamma = random_vector<float>(cols, 67);
  std::vector<float> y(rows * cols), mean(rows), rstd(rows), gx(rows * cols), ggamma(cols), gbeta(cols);
  kf().layer_norm(x.data(), gamma.data(), nullptr, y.data(), mean.data(), rstd.data(), rows, cols, 1e-5f);
  kf().layer_norm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), gy.data(), gx.data(),
                           ggamma.data(), gbeta.data(), rows, cols);
  std::vector<double> expected_gg(cols, 0.0), expected_gb(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      expected_gg[c] += double(gy[r * cols + c]) * (double(x[r * cols + c]) - mean[r]) * rstd[r];
      expected_gb[c] += gy[r * cols + c];
    }
  CHECK(max_abs_diff(ggamma, std::vector<float>(expected_gg.begin(), expected_gg.end())) <= 1e-3);
  CHECK(max_abs_diff(gbeta, std::vector<float>(expected_gb.begin(), expected_gb.end())) <= 1e-3);
}

TEST_CASE("batch_norm: stats, forward, backward (training and inference) by finite differences") {
  const int64_t N = 12, C = 3;
  const double eps = 1e-3;
  auto x = random_vector(N * C, 71, -1.0, 2.0);
  const auto w = random_vector(N * C, 72);
  for (bool with_gamma : {true, false}) {
    auto gamma = random_vector(C, 73, 0.5, 1.5);
    auto beta = random_vector(C, 74);
    const double* gamma_ptr = with_gamma ? gamma.data() : nullptr;
    std::vector<double> mean(C), var(C);
    kd().batch_norm_stats(x.data(), mean.data(), var.data(), N, C);
    for (int64_t c = 0; c < C; ++c) {
      double m = 0, v = 0;
      for (int64_t r = 0; r < N; ++r) m += x[r * C + c] / N;
      for (int64_t r = 0; r < N; ++r) v += (x[r * C + c] - m) * (x[r * C + c] - m) / N;
      CHECK(mean[c] == doctest::Approx(m).epsilon(1e-13));
      CHECK(var[c] == doctest::Approx(v).epsilon(1e-13));
    }
    std::vector<double> y(N * C);
    kd().batch_norm_forward(x.data(), mean.data(), var.data(), gamma_ptr, beta.data(), y.data(), N, C, eps);
    for (int64_t r = 0; r < N; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const double g = with_gamma ? gamma[c] : 1.0;
        CHECK(y[r * C + c] ==
              doctest::Approx((x[r * C + c] - mean[c]) / std::sqrt(var[c] + eps) * g + beta[c]).epsilon(1e-12));
      }

    // Inference: fixed running statistics, independent of x.
    const auto running_mean = random_vector(C, 75);
    const auto running_var = random_vector(C, 76, 0.5, 2.0);
    for (bool training : {true, false}) {
      INFO("training " << training << " gamma " << with_gamma);
      std::vector<double> gx(N * C), ggamma(C, 5.0), gbeta(C), scratch(N * C), sm(C), sv(C);
      const double* m_used = training ? mean.data() : running_mean.data();
      const double* v_used = training ? var.data() : running_var.data();
      kd().batch_norm_backward(x.data(), m_used, v_used, gamma_ptr, w.data(), gx.data(),
                               with_gamma ? ggamma.data() : nullptr, gbeta.data(), N, C, eps, training);
      auto loss = [&] {
        if (training) {
          kd().batch_norm_stats(x.data(), sm.data(), sv.data(), N, C);
          kd().batch_norm_forward(x.data(), sm.data(), sv.data(), gamma_ptr, beta.data(), scratch.data(), N, C, eps);
        } else {
          kd().batch_norm_forward(x.data(), running_mean.data(), running_var.data(), gamma_ptr,
                                  beta.data(), scratch.data(), N, C, eps);
        }
        return dot(scratch, w);
      };
      check_gradient("batch_norm x", x, gx, loss);
      if (with_gamma) check_gradient("batch_norm gamma", gamma, ggamma, loss);
      check_gradient("batch_norm beta", beta, gbeta, loss);
    }
  }
}

TEST_CASE("batch_norm_stats: large N in float against double") {
  const int64_t N = 40000, C = 5;
  const auto x = random_vector<float>(N * C, 77, 10.0, 12.0);  // offset mean: tests the two-pass variance
  std::vector<float> mean(C), var(C);
  kf().batch_norm_stats(x.data(), mean.data(), var.data(), N, C);
  for (int64_t c = 0; c < C; ++c) {
    double m = 0, v = 0;
    for (int64_t r = 0; r < N; ++r) m += x[r * C + c];
    m /= N;
    for (int64_t r = 0; r < N; ++r) v += (x[r * C + c] - m) * (x[r * C + c] - m);
    v /= N;
    CHECK(mean[c] == doctest::Approx(m).epsilon(1e-6));
    CHECK(var[c] == doctest::Approx(v).epsilon(1e-4));
  }
}

TEST_CASE("gru_step: forward vs the Keras reset_after formulas, backward by finite differences") {
  const int64_t B = 3, U = 4;
  auto xp = random_vector(B * 3 * U, 81, -2.0, 2.0);
  auto hp = random_vector(B * 3 * U, 82, -2.0, 2.0);
  auto h_prev = random_vector(B * U, 83);
  std::vector<double> h_new(B * U), gates(B * 3 * U);
  kd().gru_step(xp.data(), hp.data(), h_prev.data(), h_new.data(), gates.data(), B, U);
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t u = 0; u < U; ++u) {
      const int64_t zi = b * 3 * U + u, ri = zi + U, hi = zi + 2 * U;
      const double z = sigmoid(xp[zi] + hp[zi]);
      const double r = sigmoid(xp[ri] + hp[ri]);
      const double c = std::tanh(xp[hi] + r * hp[hi]);
      CHECK(gates[zi] == doctest::Approx(z).epsilon(1e-14));
      CHECK(gates[ri] == doctest::Approx(r).epsilon(1e-14));
      CHECK(gates[hi] == doctest::Approx(c).epsilon(1e-14));
      CHECK(h_new[b * U + u] == doctest::Approx(z * h_prev[b * U + u] + (1 - z) * c).epsilon(1e-14));
    }

  const auto gh = random_vector(B * U, 84);
  std::vector<double> dxp(B * 3 * U), dhp(B * 3 * U), dh_prev(B * U), scratch_h(B * U), scratch_g(B * 3 * U);
  kd().gru_step_backward(gh.data(), gates.data(), hp.data(), h_prev.data(), dxp.data(), dhp.data(),
                         dh_prev.data(), B, U);
  // hp is an input of its own here, so dh_prev is only the direct path gh * z, as documented.
  auto loss = [&] {
    kd().gru_step(xp.data(), hp.data(), h_prev.data(), scratch_h.data(), scratch_g.data(), B, U);
    return dot(scratch_h, gh);
  };
  check_gradient("gru xp", xp, dxp, loss);
  check_gradient("gru hp", hp, dhp, loss);
  check_gradient("gru h_prev", h_prev, dh_prev, loss);

  // The float table agrees with double on a parallel-sized batch.
  const int64_t B2 = 64, U2 = 512;
  const auto xp2 = random_vector<double>(B2 * 3 * U2, 85, -4.0, 4.0);
  const auto hp2 = random_vector<double>(B2 * 3 * U2, 86, -4.0, 4.0);
  const auto h2 = random_vector<double>(B2 * U2, 87);
  std::vector<double> hd(B2 * U2), gd(B2 * 3 * U2);
  kd().gru_step(xp2.data(), hp2.data(), h2.data(), hd.data(), gd.data(), B2, U2);
  std::vector<float> xf(xp2.begin(), xp2.end()), hf(hp2.begin(), hp2.end()), h2f(h2.begin(), h2.end());
  std::vector<float> out_f(B2 * U2), gates_f(B2 * 3 * U2);
  kf().gru_step(xf.data(), hf.data(), h2f.data(), out_f.data(), gates_f.data(), B2, U2);
  CHECK(max_abs_diff(out_f, std::vector<float>(hd.begin(), hd.end())) <= 1e-5);
}

TEST_CASE("gather_rows and scatter_add_rows with repeated and negative indices") {
  for (int64_t row_size : {int64_t(3), int64_t(300)}) {
    const int64_t table_rows = 10, n_idx = 400;
    const auto table = random_vector<float>(table_rows * row_size, 91);
    std::vector<int32_t> idx(n_idx), row(n_idx);
    for (int64_t i = 0; i < n_idx; ++i) {
      row[i] = int32_t((i * 7) % table_rows);  // every row repeated
      idx[i] = i % 3 == 0 ? row[i] - int32_t(table_rows) : row[i];  // -k is row table_rows - k
    }
    std::vector<float> out(n_idx * row_size);
    kf().gather_rows(table.data(), table_rows, idx.data(), out.data(), n_idx, row_size);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n_idx; ++i)
      for (int64_t c = 0; c < row_size; ++c) wrong += out[i * row_size + c] != table[row[i] * row_size + c];
    CHECK(wrong == 0);

    const auto gout = random_vector<double>(n_idx * row_size, 92);
    std::vector<double> gtable(table_rows * row_size, 1.0), expected(table_rows * row_size, 1.0);
    for (int64_t i = 0; i < n_idx; ++i)
      for (int64_t c = 0; c < row_size; ++c) expected[row[i] * row_size + c] += gout[i * row_size + c];
    kd().scatter_add_rows(gout.data(), idx.data(), gtable.data(), table_rows, n_idx, row_size);
    CHECK(max_abs_diff(gtable, expected) <= 1e-12);
  }
}
