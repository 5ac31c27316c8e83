// nn::dense_masked_crossentropy: the output Dense run on the non-padding rows only must give the
// loss and gradients of the plain composition, masked_sparse_categorical_crossentropy(Dense(h)),
// whose parts have their own finite-difference and Keras tests. Compared in double precision,
// where the two orders of summation agree to ~1e-12.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "nn/layers.h"
#include "nn/losses.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace glimpse;

namespace {

double max_abs_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to_vector_f64(), y = b.to_vector_f64();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

struct LossAndGrads {
  double loss;
  Tensor hidden, kernel, bias;
};

// Loss and gradients of hidden, kernel and bias, by the fused path or the plain one.
LossAndGrads run(nn::Dense& dense, const Tensor& hidden_value, const Tensor& targets, bool fused) {
  Tensor hidden = hidden_value.detach().set_requires_grad();
  dense.kernel.zero_grad();
  dense.bias.zero_grad();
  Tensor loss = fused ? nn::dense_masked_crossentropy(dense, hidden, targets)
                      : nn::masked_sparse_categorical_crossentropy(dense.forward(hidden), targets);
  loss.backward();
  return {loss.to(DType::F64).item(), hidden.grad(), dense.kernel.grad(), dense.bias.grad()};
}

// targets [B, T] with `real[b]` real tokens then padding (0), ids in [1, vocab).
Tensor make_targets(const std::vector<int>& real, int64_t T, int64_t vocab, Generator& gen) {
  std::vector<int32_t> ids;
  for (int length : real)
    for (int64_t t = 0; t < T; ++t)
      ids.push_back(t < length ? 1 + static_cast<int32_t>(gen.below(vocab - 1)) : 0);
  return Tensor::from_vector(ids, {static_cast<int64_t>(real.size()), T});
}

}  // namespace

TEST_CASE("the fused output layer gives the masked loss and gradients of Dense + cross-entropy") {
  Generator gen(4);
  const int64_t T = 7, units = 5, vocab = 11;
  nn::Dense dense("out", units, vocab, gen);
  dense.kernel = dense.kernel.to(DType::F64).detach().set_requires_grad();
  dense.bias = random_uniform({vocab}, -0.5, 0.5, gen).to(DType::F64).detach().set_requires_grad();
  // Some padding, none, all: the three paths of the function.
  for (const std::vector<int>& real : {std::vector<int>{7, 3, 0, 5}, std::vector<int>{7, 7},
                                       std::vector<int>{0, 0, 0}}) {
    CAPTURE(real.size());
    const int64_t B = static_cast<int64_t>(real.size());
    const Tensor hidden = random_uniform({B, T, units}, -2, 2, gen).to(DType::F64);
    const Tensor targets = make_targets(real, T, vocab, gen);
    const LossAndGrads fused = run(dense, hidden, targets, true);
    const LossAndGrads plain = run(dense, hidden, targets, false);
    CHECK(std::abs(fused.loss - plain.loss) <= 1e-12 * std::max(1.0, std::abs(plain.loss)));
    if (real[0] > 0) CHECK(plain.loss > 0.5);  // a real loss, not a vacuous 0 == 0
    CHECK(max_abs_difference(fused.hidden, plain.hidden) <= 1e-12);
    CHECK(max_abs_difference(fused.kernel, plain.kernel) <= 1e-12);
    CHECK(max_abs_difference(fused.bias, plain.bias) <= 1e-12);
    // Padding rows get exactly zero gradient (they were never part of the loss).
    const std::vector<double> gh = fused.hidden.to_vector_f64();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = real[b]; t < T; ++t)
        for (int64_t u = 0; u < units; ++u) CHECK(gh[(b * T + t) * units + u] == 0.0);
  }
}

TEST_CASE("the fused output layer names what is wrong with its inputs") {
  Generator gen(5);
  nn::Dense dense("out", 4, 9, gen);
  const Tensor targets = Tensor::from_vector(std::vector<int32_t>{1, 2, 0}, {1, 3});
  CHECK_THROWS_WITH_AS(nn::dense_masked_crossentropy(dense, random_uniform({1, 3, 5}, -1, 1, gen), targets),
                       doctest::Contains("hidden must be [..., 4]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::dense_masked_crossentropy(dense, random_uniform({1, 2, 4}, -1, 1, gen), targets),
                       doctest::Contains("targets must be int32 [1, 2]"), std::invalid_argument);
  // A target outside the vocabulary is the loss's own error, as without the fusion.
  const Tensor bad = Tensor::from_vector(std::vector<int32_t>{1, 9, 0}, {1, 3});
  CHECK_THROWS_WITH_AS(nn::dense_masked_crossentropy(dense, random_uniform({1, 3, 4}, -1, 1, gen), bad),
                       doctest::Contains("outside [0, 9)"), std::invalid_argument);
}
