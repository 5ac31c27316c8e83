// Initializers (see init.h).
#include "nn/init.h"

#include "tensor/cpu/eigen.h"  // first: it reads the intrinsics headers (see there)
#include <Eigen/Dense>
#include <cmath>
#include <stdexcept>

namespace glimpse::nn::init {

namespace {
void fans(const Shape& shape, double& fan_in, double& fan_out) {
  if (shape.size() < 1) throw std::invalid_argument("glorot_uniform: needs rank >= 1");
  if (shape.size() == 1) {
    fan_in = fan_out = static_cast<double>(shape[0]);
    return;
  }
  double receptive = 1;
  for (size_t i = 0; i + 2 < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
  fan_in = receptive * static_cast<double>(shape[shape.size() - 2]);
  fan_out = receptive * static_cast<double>(shape.back());
}
}  // namespace

Tensor glorot_uniform(const Shape& shape, Generator& gen) {
  double fan_in, fan_out;
  fans(shape, fan_in, fan_out);
  const double limit = std::sqrt(6.0 / std::max(1.0, fan_in + fan_out));
  return random_uniform(shape, -limit, limit, gen);
}

Tensor orthogonal(const Shape& shape, Generator& gen) {
  if (shape.size() < 2) throw std::invalid_argument("orthogonal: needs rank >= 2");
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  const int64_t cols = shape.back();
  // Decompose the taller orientation, then transpose back if needed.
  const int64_t r = std::max(rows, cols), c = std::min(rows, cols);
  Eigen::MatrixXd a(r, c);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) a(i, j) = gen.normal();
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(r, c);
  Eigen::MatrixXd rr = qr.matrixQR().topLeftCorner(c, c).triangularView<Eigen::Upper>();
  for (int64_t j = 0; j < c; ++j)
    if (rr(j, j) < 0) q.col(j) *= -1.0;
  if (rows < cols) q.transposeInPlace();
  std::vector<double> v(rows * cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) v[i * cols + j] = q(i, j);
  return Tensor::from_vector(v, shape).to(DType::F32);
}

Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen) {
  return random_uniform(shape, lo, hi, gen);
}

Tensor zeros(const Shape& shape) { return Tensor::zeros(shape); }
Tensor ones(const Shape& shape) { return Tensor::ones(shape); }

}  // namespace glimpse::nn::init
