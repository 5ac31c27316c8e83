// The autograd engine itself: accumulation, shared subgraphs, detach, no-grad, graph release,
// and the Tensor basics it relies on (views, creation, casts, printing).
#include <doctest/doctest.h>

#include <sstream>

#include "tensor/autograd.h"
#include "tensor/ops.h"

using namespace glimpse;

TEST_CASE("creation and views share storage") {
  Tensor a = Tensor::arange(12).to(DType::F32);
  Tensor m = reshape(a, {3, 4});
  CHECK(m.shape() == Shape{3, 4});
  Tensor t = transpose(m, 0, 1);
  CHECK(!t.is_contiguous());
  CHECK(t.contiguous().to_vector() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  Tensor s = slice(m, 1, 1, 3);
  CHECK(s.to_vector() == std::vector<float>{1, 2, 5, 6, 9, 10});
  CHECK(s.impl()->storage == a.impl()->storage);
  CHECK(Tensor::full({2}, 3.5).to_vector() == std::vector<float>{3.5f, 3.5f});
  CHECK(Tensor::zeros({0, 3}).numel() == 0);
  CHECK(Tensor::from_vector(std::vector<int32_t>{1, 2}, {2}).to(DType::F32).to_vector() ==
        std::vector<float>{1, 2});
  std::ostringstream printed;
  printed << m;
  CHECK(printed.str().find("shape=[3, 4]") != std::string::npos);
  CHECK(printed.str().find("11") != std::string::npos);
}

TEST_CASE("gradients accumulate with += across uses and across backward calls") {
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}).set_requires_grad();
  Tensor y = sum(add(mul(x, x), x));  // dy/dx = 2x + 1
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<float>{3, 5, 7});
  sum(mul_scalar(x, 2.0)).backward();  // accumulates: + 2
  CHECK(x.grad().to_vector() == std::vector<float>{5, 7, 9});
  x.zero_grad();
  CHECK(!x.grad().defined());
}

TEST_CASE("a diamond-shaped graph sums both paths once") {
  Tensor x = Tensor::from_vector(std::vector<float>{2}, {1}).set_requires_grad();
  Tensor a = mul_scalar(x, 3.0);
  Tensor b = mul(a, a);       // 9x^2
  Tensor c = add(a, b);       // 3x + 9x^2 -> 3 + 18x = 39
  sum(c).backward();
  CHECK(x.grad().item() == doctest::Approx(39.0));
}

TEST_CASE("detach and no-grad cut the graph") {
  Tensor x = Tensor::ones({2}).set_requires_grad();
  Tensor d = mul(x, x).detach();
  CHECK(!d.requires_grad());
  {
    NoGradGuard guard;
    Tensor y = mul(x, x);
    CHECK(!y.requires_grad());
    CHECK(!grad_mode_enabled());
  }
  CHECK(grad_mode_enabled());
  Tensor z = sum(mul(x, d));
  z.backward();
  CHECK(x.grad().to_vector() == std::vector<float>{1, 1});  // d is a constant
}

TEST_CASE("the graph is freed after backward; a second backward is an error") {
  Tensor x = Tensor::ones({3}).set_requires_grad();
  Tensor y = sum(exp(x));
  y.backward();
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("already freed"), std::invalid_argument);
}

TEST_CASE("backward needs a scalar or an explicit gradient") {
  Tensor x = Tensor::ones({3}).set_requires_grad();
  Tensor y = mul_scalar(x, 2.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("scalar"), std::invalid_argument);
  y.backward(Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}));
  CHECK(x.grad().to_vector() == std::vector<float>{2, 4, 6});
  Tensor c = Tensor::ones({2});
  CHECK_THROWS_WITH_AS(sum(c).backward(), doctest::Contains("does not require grad"),
                       std::invalid_argument);
}

TEST_CASE("gradients of unused outputs are treated as zero") {
  Tensor x = Tensor::ones({1, 2, 3}).set_requires_grad();
  Tensor h0 = Tensor::zeros({1, 4});
  Tensor W = Tensor::full({3, 12}, 0.1).set_requires_grad();
  Tensor R = Tensor::full({4, 12}, 0.1), b = Tensor::zeros({2, 12});
  auto [seq, state] = gru_sequence(x, h0, W, R, b);
  sum(state).backward();  // the sequence output never received a gradient
  CHECK(W.grad().defined());
  CHECK(x.grad().shape() == Shape{1, 2, 3});
}

TEST_CASE("long chains do not overflow the stack") {
  Tensor x = Tensor::ones({1}).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = add_scalar(y, 1.0);
  sum(y).backward();
  CHECK(x.grad().item() == 1.0);
}
