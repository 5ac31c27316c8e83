// Generator (splitmix64) and random tensor creation.
#include "tensor/random.h"

#include <cmath>
#include <vector>

namespace glimpse {

uint64_t Generator::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

double Generator::normal() {
  // Box-Muller; 1 - u keeps the logarithm finite.
  const double u1 = 1.0 - uniform(), u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t Generator::below(uint64_t n) {
  // Rejection sampling removes the modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64(); while (x >= limit);
  return x % n;
}

Tensor random_uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype,
                      Device device) {
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = gen.uniform(lo, hi);
  return Tensor::from_vector(v, shape).to(dtype).to(device);
}

Tensor random_normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype,
                     Device device) {
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = mean + stddev * gen.normal();
  return Tensor::from_vector(v, shape).to(dtype).to(device);
}

}  // namespace glimpse
