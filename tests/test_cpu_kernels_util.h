// Shared helpers for the CPU kernel tests (tests/test_cpu_kernels_*.cpp): random data, tolerant
// comparisons and a central finite-difference gradient checker for the double-precision tables.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tensor/cpu/backend.h"

namespace glimpse::test {

inline const Kernels<float>& kf() { return cpu::kernels_f32(); }
inline const Kernels<double>& kd() { return cpu::kernels_f64(); }

template <class T = double>
std::vector<T> random_vector(int64_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

template <class T>
double max_abs_diff(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(double(a[i]) - double(b[i]));
    if (!(d <= worst)) worst = d;  // NaN counts as a failure
  }
  return worst;
}

// max |a - b| / (1 + |b|): absolute near zero, relative for large values.
template <class T>
double max_rel_diff(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(double(a[i]) - double(b[i])) / (1 + std::abs(double(b[i])));
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

template <class T>
double dot(const std::vector<T>& a, const std::vector<T>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// Checks `analytic` = d loss / d x by central differences, perturbing x in place (restored after).
// `loss` must recompute the scalar from the current contents of x.
inline void check_gradient(const char* what, std::vector<double>& x,
                           const std::vector<double>& analytic, const std::function<double()>& loss,
                           double step = 1e-5, double tolerance = 1e-6) {
  REQUIRE(x.size() == analytic.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + step;
    const double up = loss();
    x[i] = saved - step;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * step);
    INFO(std::string(what) << " element " << i << ": analytic " << analytic[i] << " numeric " << numeric);
    CHECK(std::abs(numeric - analytic[i]) <= tolerance * (1 + std::abs(numeric)));
  }
}

}  // namespace glimpse::test
