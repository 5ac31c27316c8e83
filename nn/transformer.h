// One layer of a Transformer decoder (post-norm, as in "Attention Is All You Need"):
//
//   x = LayerNorm(x + SelfAttention(x, causal))      each position sees itself and the past
//   x = LayerNorm(x + CrossAttention(x, memory))     the image features are the memory
//   x = LayerNorm(x + Dense(relu(Dense(x))))         position-wise feed-forward
//
// forward() runs a whole (teacher-forced) sequence at once. step() feeds ONE new position and
// keeps the self-attention keys and values of the earlier positions in a cache, so decoding a
// caption of n tokens projects each token once instead of re-running the prefix n times.
#pragma once
#include <memory>

#include "nn/attention.h"
#include "nn/layers.h"

namespace glimpse::nn {

class TransformerDecoderLayer : public Module {
 public:
  TransformerDecoderLayer(const std::string& name, int64_t dim, int64_t memory_dim, int64_t heads,
                          int64_t ff_dim, Generator& gen);
  std::string type_name() const override { return "TransformerDecoderLayer"; }

  struct Output {
    Tensor x;                // [B, T, dim]
    Tensor cross_attention;  // [B, heads, T, cells]
  };
  // x [B, T, dim], memory [B, cells, memory_dim].
  Output forward(const Tensor& x, const Tensor& memory) const;

  // The self-attention cache of one layer: projected keys and values of the positions fed so far,
  // [B, heads, t, key_dim] each (undefined before the first step).
  struct Cache {
    Tensor keys, values;
  };
  // x [B, 1, dim]: the newest position only. Appends its keys/values to `cache`.
  Output step(const Tensor& x, const Tensor& memory, Cache& cache) const;

  std::unique_ptr<MultiHeadAttention> self_attention, cross_attention;
  std::unique_ptr<LayerNormalization> norm_self, norm_cross, norm_ff;
  std::unique_ptr<Dense> ff_hidden, ff_out;

 private:
  Output finish(const Tensor& x, const Tensor& self_out, const Tensor& memory) const;
};

}  // namespace glimpse::nn
