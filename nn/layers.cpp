// Dense, Conv2D, BatchNormalization, LayerNormalization, Embedding, Dropout and the stateless
// pooling helpers.
#include "nn/layers.h"

#include <stdexcept>

#include "nn/init.h"
#include "tensor/profiler.h"

namespace glimpse::nn {

Tensor apply_activation(const Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::None: return x;
    case Activation::Relu: return relu(x);
    case Activation::Sigmoid: return sigmoid(x);
    case Activation::Tanh: return tanh(x);
    case Activation::Softmax: return softmax(x, -1);
  }
  return x;
}

Activation activation_from_name(const std::string& name) {
  if (name == "linear" || name == "none" || name.empty()) return Activation::None;
  if (name == "relu") return Activation::Relu;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "tanh") return Activation::Tanh;
  if (name == "softmax") return Activation::Softmax;
  throw std::invalid_argument("activation_from_name: unknown activation '" + name + "'");
}

Dense::Dense(const std::string& name, int64_t in, int64_t n_units, Generator& gen,
             Activation act, bool bias_on)
    : Module(name), in_features(in), units(n_units), activation(act), use_bias(bias_on) {
  register_parameter("kernel", kernel, init::glorot_uniform({in, n_units}, gen));
  if (use_bias) register_parameter("bias", bias, init::zeros({n_units}));
}

Tensor Dense::forward(const Tensor& x) const {
  GLIMPSE_OP_SCOPE("Dense:" + name(), forward, x);
  if (x.rank() < 1 || x.shape().back() != in_features)
    throw std::invalid_argument("Dense '" + name() + "': expected input [..., " +
                                std::to_string(in_features) + "], got " + shape_str(x.shape()));
  Shape out_shape = x.shape();
  out_shape.back() = units;
  Tensor y = matmul(reshape(x, {-1, in_features}), kernel);
  if (use_bias) y = add(y, bias);
  return apply_activation(reshape(y, out_shape), activation);
}

Conv2D::Conv2D(const std::string& name, int64_t cin, int64_t filters, int kh, int kw,
               Generator& gen, int stride_, Padding padding_, bool bias_on, Activation act,
               int dilation_h_, int dilation_w_, int groups_)
    : Module(name),
      stride(stride_),
      padding(padding_),
      use_bias(bias_on),
      activation(act),
      dilation_h(dilation_h_),
      dilation_w(dilation_w_),
      groups(groups_) {
  if (groups <= 0 || cin % groups != 0 || filters % groups != 0)
    throw std::invalid_argument("Conv2D '" + name + "': groups (" + std::to_string(groups) +
                                ") must be positive and divide both the input channels (" +
                                std::to_string(cin) + ") and filters (" + std::to_string(filters) +
                                ")");
  register_parameter("kernel", kernel,
                     init::glorot_uniform({kh, kw, cin / groups, filters}, gen));
  if (use_bias) register_parameter("bias", bias, init::zeros({filters}));
}

Conv2dOptions Conv2D::options() const {
  Conv2dOptions o;
  o.stride_h = o.stride_w = stride;
  o.padding = padding;
  o.dilation_h = dilation_h;
  o.dilation_w = dilation_w;
  o.groups = groups;
  return o;
}

Tensor Conv2D::forward(const Tensor& x) const {
  GLIMPSE_OP_SCOPE("Conv2D:" + name(), forward, x);
  // The bias (and a ReLU) ride in the convolution's epilogue when no gradients are needed.
  if (use_bias && (activation == Activation::None || activation == Activation::Relu))
    return conv2d_bias_activation(x, kernel, bias, options(), activation == Activation::Relu);
  Tensor y = conv2d(x, kernel, options());
  if (use_bias) y = add(y, bias);
  return apply_activation(y, activation);
}

DepthwiseConv2D::DepthwiseConv2D(const std::string& name, int64_t cin, int kh, int kw,
                                 Generator& gen, int stride_, Padding padding_,
                                 int64_t multiplier, bool bias_on, Activation act,
                                 int dilation_h_, int dilation_w_)
    : Module(name),
      stride(stride_),
      padding(padding_),
      depth_multiplier(multiplier),
      use_bias(bias_on),
      activation(act),
      dilation_h(dilation_h_),
      dilation_w(dilation_w_) {
  if (multiplier <= 0)
    throw std::invalid_argument("DepthwiseConv2D '" + name + "': depth_multiplier must be "
                                "positive, got " + std::to_string(multiplier));
  register_parameter("depthwise_kernel", depthwise_kernel,
                     init::glorot_uniform({kh, kw, cin, multiplier}, gen));
  if (use_bias) register_parameter("bias", bias, init::zeros({cin * multiplier}));
}

Tensor DepthwiseConv2D::forward(const Tensor& x) const {
  GLIMPSE_OP_SCOPE("DepthwiseConv2D:" + name(), forward, x);
  // A convolution with one group per input channel: the kernel (kh, kw, cin, m) read as
  // (kh, kw, 1, cin * m) puts channel c's filters at outputs c * m + m', Keras's order.
  const Shape& k = depthwise_kernel.shape();
  Conv2dOptions o;
  o.stride_h = o.stride_w = stride;
  o.padding = padding;
  o.dilation_h = dilation_h;
  o.dilation_w = dilation_w;
  o.groups = static_cast<int>(k[2]);
  Tensor kernel = reshape(depthwise_kernel, {k[0], k[1], 1, k[2] * k[3]});
  if (use_bias && (activation == Activation::None || activation == Activation::Relu))
    return conv2d_bias_activation(x, kernel, bias, o, activation == Activation::Relu);
  Tensor y = conv2d(x, kernel, o);
  if (use_bias) y = add(y, bias);
  return apply_activation(y, activation);
}

BatchNormalization::BatchNormalization(const std::string& name, int64_t channels, bool scale_on,
                                       bool center_on, double momentum_, double epsilon_)
    : Module(name), scale(scale_on), center(center_on), momentum(momentum_), epsilon(epsilon_) {
  if (scale) register_parameter("gamma", gamma, init::ones({channels}));
  if (center) register_parameter("beta", beta, init::zeros({channels}));
  else beta = Tensor::zeros({channels});
  register_buffer("moving_mean", moving_mean, init::zeros({channels}));
  register_buffer("moving_variance", moving_variance, init::ones({channels}));
}

Tensor BatchNormalization::forward(const Tensor& x) {
  GLIMPSE_OP_SCOPE("BatchNormalization:" + name(), forward, x);
  if (!center && beta.device() != x.device()) beta = beta.to(x.device());
  return batch_norm(x, scale ? gamma : Tensor(), beta, moving_mean, moving_variance,
                    training_behaviour(), momentum, epsilon);
}

LayerNormalization::LayerNormalization(const std::string& name, int64_t features, double eps)
    : Module(name), epsilon(eps) {
  register_parameter("gamma", gamma, init::ones({features}));
  register_parameter("beta", beta, init::zeros({features}));
}

Tensor LayerNormalization::forward(const Tensor& x) const {
  GLIMPSE_OP_SCOPE("LayerNormalization:" + name(), forward, x);
  return layer_norm(x, gamma, beta, epsilon);
}

Embedding::Embedding(const std::string& name, int64_t input_dim, int64_t output_dim,
                     Generator& gen)
    : Module(name) {
  register_parameter("embeddings", embeddings, init::uniform({input_dim, output_dim}, -0.05, 0.05, gen));
}

Tensor Embedding::forward(const Tensor& ids) const { return gather_rows(embeddings, ids); }

Dropout::Dropout(const std::string& name, double rate_, uint64_t seed_)
    : Module(name), rate(rate_), seed(seed_) {
  if (rate < 0 || rate >= 1)
    throw std::invalid_argument("Dropout '" + name + "': rate must be in [0, 1)");
}

Tensor Dropout::forward(const Tensor& x) {
  if (!training_behaviour() || rate == 0) return x;
  // Each call gets its own stretch of the counter space.
  const uint64_t offset = (calls++) << 40;
  return dropout(x, rate, seed, offset);
}

Tensor max_pooling2d(const Tensor& x, int pool, int stride, Padding padding) {
  return max_pool2d(x, pool, pool, stride, stride, padding);
}

Tensor average_pooling2d(const Tensor& x, int pool, int stride, Padding padding) {
  return avg_pool2d(x, pool, pool, stride, stride, padding);
}

Tensor global_average_pooling2d(const Tensor& x) {
  if (x.rank() != 4)
    throw std::invalid_argument("global_average_pooling2d: input must be NHWC, got " +
                                shape_str(x.shape()));
  return mean(x, {1, 2});
}

}  // namespace glimpse::nn
