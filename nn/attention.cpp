// Attention and MultiHeadAttention, composed from batched matmuls and softmax.
#include "nn/attention.h"

#include <cmath>
#include <stdexcept>

#include "nn/init.h"
#include "tensor/profiler.h"

namespace glimpse::nn {

Tensor causal_keep_mask(int64_t tq, int64_t tv, DType dtype, Device device) {
  std::vector<float> keep(tq * tv);
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tv; ++j) keep[i * tv + j] = j <= i ? 1.0f : 0.0f;
  return Tensor::from_vector(keep, {tq, tv}).to(dtype).to(device);
}

namespace {
// scores - 1e9 * (1 - keep): Keras's additive masking.
Tensor apply_keep_mask(const Tensor& scores, const Tensor& keep) {
  return sub(scores, mul_scalar(add_scalar(neg(keep), 1.0), kAttentionMaskValue));
}
}  // namespace

Attention::Attention(const std::string& name, bool scale_on) : Module(name), use_scale(scale_on) {
  if (use_scale) register_parameter("scale", scale, Tensor::ones({}));
}

AttentionResult Attention::forward(const Tensor& query, const Tensor& value, const Tensor& key_in,
                                   bool use_causal_mask, const Tensor& value_mask) const {
  GLIMPSE_OP_SCOPE("Attention:" + name(), forward, query, value, key_in, use_causal_mask,
                   value_mask);
  const Tensor& key = key_in.defined() ? key_in : value;
  if (query.rank() != 3 || value.rank() != 3 || key.rank() != 3 ||
      query.shape()[2] != key.shape()[2] || query.shape()[0] != key.shape()[0] ||
      key.shape()[1] != value.shape()[1] || key.shape()[0] != value.shape()[0])
    throw std::invalid_argument("Attention '" + name() + "': incompatible query " +
                                shape_str(query.shape()) + ", value " + shape_str(value.shape()) +
                                ", key " + shape_str(key.shape()) +
                                " (need [B, Tq, d], [B, Tv, dv], [B, Tv, d])");
  Tensor scores = matmul(query, key, false, true);  // [B, Tq, Tv]
  if (use_scale) scores = mul(scores, scale);
  if (use_causal_mask)
    scores = apply_keep_mask(scores, causal_keep_mask(scores.shape()[1], scores.shape()[2],
                                                      scores.dtype(), scores.device()));
  if (value_mask.defined()) {
    if (value_mask.shape() != Shape{key.shape()[0], key.shape()[1]})
      throw std::invalid_argument("Attention '" + name() + "': value_mask " +
                                  shape_str(value_mask.shape()) + " must be [B, Tv]");
    scores = apply_keep_mask(scores, unsqueeze(value_mask, 1));
  }
  Tensor weights = softmax(scores, -1);
  return {matmul(weights, value), weights};
}

MultiHeadAttention::MultiHeadAttention(const std::string& name, int64_t qdim, int64_t vdim_in,
                                       int64_t heads, int64_t kdim, Generator& gen, int64_t vdim)
    : Module(name), num_heads(heads), key_dim(kdim), value_dim(vdim < 0 ? kdim : vdim),
      query_dim(qdim) {
  register_parameter("query/kernel", query_kernel, init::glorot_uniform({qdim, heads, kdim}, gen));
  register_parameter("query/bias", query_bias, init::zeros({heads, kdim}));
  register_parameter("key/kernel", key_kernel, init::glorot_uniform({vdim_in, heads, kdim}, gen));
  register_parameter("key/bias", key_bias, init::zeros({heads, kdim}));
  register_parameter("value/kernel", value_kernel,
                     init::glorot_uniform({vdim_in, heads, value_dim}, gen));
  register_parameter("value/bias", value_bias, init::zeros({heads, value_dim}));
  register_parameter("attention_output/kernel", output_kernel,
                     init::glorot_uniform({heads, value_dim, qdim}, gen));
  register_parameter("attention_output/bias", output_bias, init::zeros({qdim}));
}

namespace {
// x [B, T, d] times kernel (d, H, k) plus bias (H, k) -> [B, H, T, k]
Tensor project_heads(const Tensor& x, const Tensor& kernel, const Tensor& bias) {
  const int64_t B = x.shape()[0], T = x.shape()[1], d = x.shape()[2];
  const int64_t H = kernel.shape()[1], k = kernel.shape()[2];
  Tensor y = matmul(reshape(x, {B * T, d}), reshape(kernel, {d, H * k}));
  y = add(y, reshape(bias, {H * k}));
  return permute(reshape(y, {B, T, H, k}), {0, 2, 1, 3}).contiguous();
}
}  // namespace

Tensor MultiHeadAttention::project_query(const Tensor& query) const {
  return project_heads(query, query_kernel, query_bias);
}
Tensor MultiHeadAttention::project_key(const Tensor& key) const {
  return project_heads(key, key_kernel, key_bias);
}
Tensor MultiHeadAttention::project_value(const Tensor& value) const {
  return project_heads(value, value_kernel, value_bias);
}

AttentionResult MultiHeadAttention::forward(const Tensor& query, const Tensor& value,
                                            const Tensor& key_in, bool use_causal_mask) const {
  GLIMPSE_OP_SCOPE("MultiHeadAttention:" + name(), forward, query, value, key_in,
                   use_causal_mask);
  const Tensor& key = key_in.defined() ? key_in : value;
  if (query.rank() != 3 || value.rank() != 3 || key.rank() != 3 || query.shape()[2] != query_dim ||
      value.shape()[2] != value_kernel.shape()[0] || key.shape()[2] != key_kernel.shape()[0])
    throw std::invalid_argument("MultiHeadAttention '" + name() + "': incompatible query " +
                                shape_str(query.shape()) + ", value " + shape_str(value.shape()) +
                                ", key " + shape_str(key.shape()));
  return attend(project_query(query), project_key(key), project_value(value), use_causal_mask);
}

AttentionResult MultiHeadAttention::attend(const Tensor& q_in, const Tensor& k, const Tensor& v,
                                           bool use_causal_mask) const {
  if (q_in.rank() != 4 || k.rank() != 4 || v.rank() != 4 || q_in.shape()[1] != num_heads ||
      q_in.shape()[3] != key_dim || k.shape() != Shape{q_in.shape()[0], num_heads, k.shape()[2], key_dim} ||
      v.shape() != Shape{q_in.shape()[0], num_heads, k.shape()[2], value_dim})
    throw std::invalid_argument("MultiHeadAttention '" + name() + "': projected q " +
                                shape_str(q_in.shape()) + ", k " + shape_str(k.shape()) + ", v " +
                                shape_str(v.shape()) + " do not fit " + std::to_string(num_heads) +
                                " heads of width " + std::to_string(key_dim));
  const int64_t B = q_in.shape()[0], Tq = q_in.shape()[2];
  Tensor q = mul_scalar(q_in, 1.0 / std::sqrt(static_cast<double>(key_dim)));
  Tensor scores = matmul(q, k, false, true);  // [B, H, Tq, Tv]
  if (use_causal_mask)
    scores = apply_keep_mask(scores, causal_keep_mask(Tq, scores.shape()[3], scores.dtype(),
                                                      scores.device()));
  Tensor weights = softmax(scores, -1);
  Tensor context = matmul(weights, v);                                  // [B, H, Tq, dv]
  context = reshape(permute(context, {0, 2, 1, 3}), {B * Tq, num_heads * value_dim});
  Tensor out = matmul(context, reshape(output_kernel, {num_heads * value_dim, query_dim}));
  out = add(out, output_bias);
  return {reshape(out, {B, Tq, query_dim}), weights};
}

}  // namespace glimpse::nn
