// GRU with Keras semantics (reset_after=True, gate order z, r, h): kernel (in, 3u) glorot_uniform,
// recurrent_kernel (u, 3u) orthogonal, bias (2, 3u) zeros — row 0 for the input projection,
// row 1 for the recurrent one. The sequence runs as ONE fused op (tensor/ops_gru.cpp).
#pragma once
#include "nn/module.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace glimpse::nn {

class GRU : public Module {
 public:
  GRU(const std::string& name, int64_t input_dim, int64_t units, Generator& gen);
  std::string type_name() const override { return "GRU"; }

  // x [B, T, in], optional initial state [B, units] (zeros when undefined)
  // -> (sequence [B, T, units], final state [B, units]): return_sequences + return_state.
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& initial_state = Tensor()) const;
  // One step for inference: x [B, in], state [B, units] -> new state [B, units].
  Tensor step(const Tensor& x, const Tensor& state) const;

  Tensor kernel, recurrent_kernel, bias;
  int64_t input_dim, units;
};

}  // namespace glimpse::nn
