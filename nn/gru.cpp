// GRU layer (see gru.h).
#include "nn/gru.h"

#include <stdexcept>

#include "nn/init.h"

namespace glimpse::nn {

GRU::GRU(const std::string& name, int64_t in, int64_t u, Generator& gen)
    : Module(name), input_dim(in), units(u) {
  register_parameter("kernel", kernel, init::glorot_uniform({in, 3 * u}, gen));
  register_parameter("recurrent_kernel", recurrent_kernel, init::orthogonal({u, 3 * u}, gen));
  register_parameter("bias", bias, init::zeros({2, 3 * u}));
}

std::pair<Tensor, Tensor> GRU::forward(const Tensor& x, const Tensor& initial_state) const {
  if (x.rank() != 3 || x.shape()[2] != input_dim)
    throw std::invalid_argument("GRU '" + name() + "': expected input [batch, time, " +
                                std::to_string(input_dim) + "], got " + shape_str(x.shape()));
  Tensor h0 = initial_state.defined()
                  ? initial_state
                  : Tensor::zeros({x.shape()[0], units}, x.dtype(), x.device());
  return gru_sequence(x, h0, kernel, recurrent_kernel, bias);
}

Tensor GRU::step(const Tensor& x, const Tensor& state) const {
  if (x.rank() != 2)
    throw std::invalid_argument("GRU '" + name() + "': step expects [batch, features], got " +
                                shape_str(x.shape()));
  return forward(unsqueeze(x, 1), state).second;
}

}  // namespace glimpse::nn
