// TransformerDecoderLayer (see transformer.h).
#include "nn/transformer.h"
#include "tensor/profiler.h"

#include <stdexcept>

namespace glimpse::nn {

TransformerDecoderLayer::TransformerDecoderLayer(const std::string& name, int64_t dim,
                                                 int64_t memory_dim, int64_t heads, int64_t ff_dim,
                                                 Generator& gen)
    : Module(name) {
  if (heads <= 0 || dim % heads != 0)
    throw std::invalid_argument("TransformerDecoderLayer '" + name + "': width " +
                                std::to_string(dim) + " is not divisible by " +
                                std::to_string(heads) + " heads");
  const int64_t head_dim = dim / heads;
  register_module(self_attention,
                  std::make_unique<MultiHeadAttention>("self_attention", dim, dim, heads, head_dim, gen));
  register_module(norm_self, std::make_unique<LayerNormalization>("norm_self", dim));
  register_module(cross_attention, std::make_unique<MultiHeadAttention>(
                                       "cross_attention", dim, memory_dim, heads, head_dim, gen));
  register_module(norm_cross, std::make_unique<LayerNormalization>("norm_cross", dim));
  register_module(ff_hidden, std::make_unique<Dense>("ff_hidden", dim, ff_dim, gen, Activation::Relu));
  register_module(ff_out, std::make_unique<Dense>("ff_out", ff_dim, dim, gen));
  register_module(norm_ff, std::make_unique<LayerNormalization>("norm_ff", dim));
}

TransformerDecoderLayer::Output TransformerDecoderLayer::finish(const Tensor& x, const Tensor& self_out,
                                                                const Tensor& memory) const {
  Tensor h = norm_self->forward(add(x, self_out));
  AttentionResult cross = cross_attention->forward(h, memory);
  h = norm_cross->forward(add(h, cross.output));
  h = norm_ff->forward(add(h, ff_out->forward(ff_hidden->forward(h))));
  return {h, cross.weights};
}

TransformerDecoderLayer::Output TransformerDecoderLayer::forward(const Tensor& x,
                                                                 const Tensor& memory) const {
  GLIMPSE_OP_SCOPE("TransformerDecoderLayer:" + name(), forward, x, memory);
  if (x.rank() != 3 || memory.rank() != 3 || x.shape()[0] != memory.shape()[0])
    throw std::invalid_argument("TransformerDecoderLayer '" + name() + "': x " + shape_str(x.shape()) +
                                " and memory " + shape_str(memory.shape()) +
                                " must be [B, T, dim] and [B, cells, memory_dim]");
  return finish(x, self_attention->forward(x, x, x, /*use_causal_mask=*/true).output, memory);
}

TransformerDecoderLayer::Output TransformerDecoderLayer::step(const Tensor& x, const Tensor& memory,
                                                              Cache& cache) const {
  if (x.rank() != 3 || x.shape()[1] != 1)
    throw std::invalid_argument("TransformerDecoderLayer '" + name() +
                                "': step takes one position [B, 1, dim], got " + shape_str(x.shape()));
  Tensor k = self_attention->project_key(x), v = self_attention->project_value(x);
  if (cache.keys.defined()) {
    k = concat({cache.keys, k}, 2);
    v = concat({cache.values, v}, 2);
  }
  cache.keys = k;
  cache.values = v;
  // The newest position may attend to every cached one: no mask is needed.
  Tensor self_out = self_attention->attend(self_attention->project_query(x), k, v).output;
  return finish(x, self_out, memory);
}

}  // namespace glimpse::nn
