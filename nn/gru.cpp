// GRU and Bidirectional layers (see gru.h).
#include "nn/gru.h"

#include <algorithm>
#include <stdexcept>

#include "nn/init.h"
#include "tensor/profiler.h"

namespace glimpse::nn {

GRU::GRU(const std::string& name, int64_t in, int64_t u, Generator& gen, GruOptions opts)
    : Module(name), input_dim(in), units(u), options(opts) {
  register_parameter("kernel", kernel, init::glorot_uniform({in, 3 * u}, gen));
  register_parameter("recurrent_kernel", recurrent_kernel, init::orthogonal({u, 3 * u}, gen));
  register_parameter("bias", bias,
                     init::zeros(opts.reset_after ? Shape{2, 3 * u} : Shape{3 * u}));
}

std::pair<Tensor, Tensor> GRU::forward(const Tensor& x, const Tensor& initial_state) const {
  GLIMPSE_OP_SCOPE("GRU:" + name(), forward, x, initial_state);
  if (x.rank() != 3 || x.shape()[2] != input_dim)
    throw std::invalid_argument("GRU '" + name() + "': expected input [batch, time, " +
                                std::to_string(input_dim) + "], got " + shape_str(x.shape()));
  Tensor h0 = initial_state.defined()
                  ? initial_state
                  : Tensor::zeros({x.shape()[0], units}, x.dtype(), x.device());
  return gru_sequence(x, h0, kernel, recurrent_kernel, bias, options);
}

const char* merge_mode_name(MergeMode mode) {
  switch (mode) {
    case MergeMode::Concat: return "concat";
    case MergeMode::Sum: return "sum";
    case MergeMode::Mul: return "mul";
    case MergeMode::Ave: return "ave";
  }
  return "?";
}

namespace {

// x [B, T, ...] with the time axis reversed (as a differentiable split + concat).
Tensor reverse_time(const Tensor& x) {
  const int64_t T = x.shape()[1];
  if (T == 1) return x;
  std::vector<Tensor> steps = split(x, std::vector<int64_t>(T, 1), 1);
  std::reverse(steps.begin(), steps.end());
  return concat(steps, 1);
}

Tensor merge(MergeMode mode, const Tensor& a, const Tensor& b) {
  switch (mode) {
    case MergeMode::Concat: return concat({a, b}, -1);
    case MergeMode::Sum: return a + b;
    case MergeMode::Mul: return a * b;
    case MergeMode::Ave: return (a + b) * 0.5;
  }
  throw std::invalid_argument("Bidirectional: unknown merge mode");
}

GruOptions flipped(GruOptions options) {
  options.go_backwards = !options.go_backwards;
  return options;
}

}  // namespace

Bidirectional::Bidirectional(const std::string& name, int64_t input_dim, int64_t units,
                             Generator& gen, MergeMode mode, GruOptions gru_options,
                             const std::string& layer_name)
    : Module(name), merge_mode(mode) {
  register_module(forward_layer, std::make_unique<GRU>("forward_" + layer_name, input_dim, units,
                                                       gen, gru_options));
  register_module(backward_layer, std::make_unique<GRU>("backward_" + layer_name, input_dim,
                                                        units, gen, flipped(gru_options)));
}

BidirectionalOutput Bidirectional::forward(const Tensor& x, const Tensor& forward_initial_state,
                                           const Tensor& backward_initial_state) const {
  if (forward_initial_state.defined() != backward_initial_state.defined())
    throw std::invalid_argument("Bidirectional '" + name() +
                                "': give both initial states (forward, backward) or neither");
  BidirectionalOutput out;
  Tensor backward_seq;
  std::tie(out.forward_sequence, out.forward_state) = forward_layer->forward(x, forward_initial_state);
  std::tie(backward_seq, out.backward_state) = backward_layer->forward(x, backward_initial_state);
  // The backward layer returns its steps in processing order; Keras flips them back so that
  // step t of both halves belongs to input step t.
  out.backward_sequence = reverse_time(backward_seq);
  out.sequence = merge(merge_mode, out.forward_sequence, out.backward_sequence);
  out.last = merge(merge_mode, out.forward_state, out.backward_state);
  return out;
}

}  // namespace glimpse::nn
