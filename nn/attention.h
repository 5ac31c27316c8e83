// Keras Attention (Luong dot-product) and MultiHeadAttention. Both return the attention weights
// alongside the output: the captioner's attention maps are these weights.
#pragma once
#include "nn/module.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace glimpse::nn {

struct AttentionResult {
  Tensor output;   // [B, Tq, dim]
  Tensor weights;  // [B, Tq, Tv] (Attention) or [B, heads, Tq, Tv] (MultiHeadAttention)
};

// Additive mask value for disallowed scores, as Keras uses it.
constexpr double kAttentionMaskValue = 1e9;

// scores = query key^T (times a trainable scalar `scale` when use_scale), causal and value masks
// subtract 1e9, weights = softmax over Tv, output = weights value. key defaults to value.
class Attention : public Module {
 public:
  Attention(const std::string& name, bool use_scale = false);
  std::string type_name() const override { return "Attention"; }
  // value_mask: optional float [B, Tv], 1 = keep, 0 = masked.
  AttentionResult forward(const Tensor& query, const Tensor& value, const Tensor& key = Tensor(),
                          bool use_causal_mask = false, const Tensor& value_mask = Tensor()) const;

  Tensor scale;  // defined only with use_scale (initialised to 1)
  bool use_scale;
};

// Multi-head attention with Keras's weight layout: query/key/value kernels (dim, heads, key_dim)
// with biases (heads, key_dim), output kernel (heads, value_dim, dim) with bias (dim).
class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(const std::string& name, int64_t query_dim, int64_t value_dim_in,
                     int64_t num_heads, int64_t key_dim, Generator& gen, int64_t value_dim = -1);
  std::string type_name() const override { return "MultiHeadAttention"; }
  AttentionResult forward(const Tensor& query, const Tensor& value, const Tensor& key = Tensor(),
                          bool use_causal_mask = false) const;

  // The pieces of forward(), for callers that keep projected keys/values between calls (a
  // Transformer decoder's cache): inputs [B, T, d] -> per-head projections [B, heads, T, k].
  Tensor project_query(const Tensor& query) const;
  Tensor project_key(const Tensor& key) const;
  Tensor project_value(const Tensor& value) const;
  // Scaled dot-product attention over projected heads, then the output projection:
  // q [B, H, Tq, k], k [B, H, Tv, k], v [B, H, Tv, dv] -> output [B, Tq, query_dim].
  AttentionResult attend(const Tensor& q, const Tensor& k, const Tensor& v,
                         bool use_causal_mask = false) const;

  Tensor query_kernel, query_bias, key_kernel, key_bias, value_kernel, value_bias, output_kernel,
      output_bias;
  int64_t num_heads, key_dim, value_dim, query_dim;
};

// Lower-triangular keep-mask [Tq, Tv]: query position i may attend to key positions j <= i, built
// from row/column indices exactly as Keras does (no end alignment when Tq != Tv).
Tensor causal_keep_mask(int64_t tq, int64_t tv, DType dtype, Device device);

}  // namespace glimpse::nn
