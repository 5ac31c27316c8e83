// Weight initializers with Keras's definitions and defaults.
#pragma once
#include "tensor/random.h"

namespace glimpse::nn::init {

// U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)); for conv kernels (kh, kw, cin, cout)
// the fans are kh*kw*cin and kh*kw*cout, as Keras computes them.
Tensor glorot_uniform(const Shape& shape, Generator& gen);
// A (semi-)orthogonal matrix from the QR decomposition of a normal matrix, signs fixed by R's
// diagonal (Keras Orthogonal, gain 1); the shape is flattened to (prod(shape[:-1]), shape[-1]).
Tensor orthogonal(const Shape& shape, Generator& gen);
Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen);  // Embedding: ±0.05
Tensor zeros(const Shape& shape);
Tensor ones(const Shape& shape);

}  // namespace glimpse::nn::init
