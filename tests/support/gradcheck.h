// Finite-difference gradient checking in double precision, shared by the gradient tests.
//
// For f(inputs) -> tensor, the checked scalar is L = sum(f(inputs) * R) with a fixed random R, so
// every output element contributes with its own weight (a plain sum would hide some errors).
// Analytic gradients come from backward(); numeric ones from central differences
// (L(x + h) - L(x - h)) / 2h with h = 1e-6. In double precision the two agree to ~1e-8, so the
// tolerance below (1e-6 relative to the gradient scale) catches any missing or wrong term.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace glimpse::testing {

inline Tensor random_tensor(const Shape& shape, std::mt19937& rng, double lo = -1.0,
                            double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = dist(rng);
  return Tensor::from_vector(v, shape);
}

inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::fabs(x));
  return m;
}

// Checks d/d(inputs[i]) for every input that requires grad. Inputs must be float64 CPU tensors.
inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            std::vector<Tensor> inputs, uint32_t seed = 7,
                            double tolerance = 1e-6) {
  std::mt19937 rng(seed);
  for (Tensor& t : inputs)
    if (t.dtype() == DType::F64) t.set_requires_grad(true);
  Tensor out0 = f(inputs);
  Tensor weights = random_tensor(out0.shape(), rng);
  auto loss_of = [&](const std::vector<Tensor>& xs) { return sum(mul(f(xs), weights)); };

  for (Tensor& t : inputs) t.zero_grad();
  loss_of(inputs).backward();

  const double h = 1e-6;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (inputs[k].dtype() != DType::F64) continue;
    Tensor analytic = inputs[k].grad();
    REQUIRE_MESSAGE(analytic.defined(), "no gradient reached input " << k);
    std::vector<double> a = analytic.to_vector_f64();
    std::vector<double> numeric(inputs[k].numel());
    double* p = inputs[k].data<double>();
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      NoGradGuard no_grad;
      const double saved = p[i];
      p[i] = saved + h;
      const double up = loss_of(inputs).item();
      p[i] = saved - h;
      const double down = loss_of(inputs).item();
      p[i] = saved;
      numeric[i] = (up - down) / (2 * h);
    }
    const double scale = std::max(1.0, max_abs(numeric));
    const double err = max_abs_diff(a, numeric) / scale;
    CHECK_MESSAGE(err <= tolerance, "input " << k << " of shape " << shape_str(inputs[k].shape())
                                              << ": max gradient error " << err);
  }
}

}  // namespace glimpse::testing
