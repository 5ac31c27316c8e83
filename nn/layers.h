// The Keras-equivalent layers (weights, layouts, defaults and initializers as in Keras; see
// docs/layers.md for the math of each). Recurrent and attention layers live in nn/gru.h and
// nn/attention.h.
#pragma once
#include <memory>
#include <optional>

#include "nn/module.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace glimpse::nn {

enum class Activation { None, Relu, Sigmoid, Tanh, Softmax };
Tensor apply_activation(const Tensor& x, Activation activation);
Activation activation_from_name(const std::string& name);  // "linear"/"relu"/...; throws otherwise

// Dense: y = activation(x kernel + bias); kernel (in, units), glorot_uniform; bias zeros.
class Dense : public Module {
 public:
  Dense(const std::string& name, int64_t in_features, int64_t units, Generator& gen,
        Activation activation = Activation::None, bool use_bias = true);
  std::string type_name() const override { return "Dense"; }
  Tensor forward(const Tensor& x) const;  // x [..., in] -> [..., units]

  Tensor kernel, bias;
  int64_t in_features, units;
  Activation activation;
  bool use_bias;
};

// Conv2D, NHWC, kernel (kh, kw, cin / groups, cout), glorot_uniform; optional bias (zeros).
// dilation_rate and groups as Keras's (groups must divide cin and filters).
class Conv2D : public Module {
 public:
  Conv2D(const std::string& name, int64_t in_channels, int64_t filters, int kernel_h, int kernel_w,
         Generator& gen, int stride = 1, Padding padding = Padding::Same, bool use_bias = true,
         Activation activation = Activation::None, int dilation_h = 1, int dilation_w = 1,
         int groups = 1);
  std::string type_name() const override { return "Conv2D"; }
  Tensor forward(const Tensor& x) const;
  Conv2dOptions options() const;

  Tensor kernel, bias;
  int stride;
  Padding padding;
  bool use_bias;
  Activation activation;
  int dilation_h, dilation_w, groups;
};

// DepthwiseConv2D (Keras): each input channel convolved with its own depth_multiplier filters;
// output channel c * depth_multiplier + m comes from input channel c. Weights "depthwise_kernel"
// (kh, kw, cin, depth_multiplier), glorot_uniform, and an optional "bias" (cin * multiplier,
// zeros). Keras's defaults: stride 1, valid padding (unlike Conv2D here, whose default is same).
class DepthwiseConv2D : public Module {
 public:
  DepthwiseConv2D(const std::string& name, int64_t in_channels, int kernel_h, int kernel_w,
                  Generator& gen, int stride = 1, Padding padding = Padding::Valid,
                  int64_t depth_multiplier = 1, bool use_bias = true,
                  Activation activation = Activation::None, int dilation_h = 1,
                  int dilation_w = 1);
  std::string type_name() const override { return "DepthwiseConv2D"; }
  Tensor forward(const Tensor& x) const;

  Tensor depthwise_kernel, bias;
  int stride;
  Padding padding;
  int64_t depth_multiplier;
  bool use_bias;
  Activation activation;
  int dilation_h, dilation_w;
};

// BatchNormalization over the last axis: epsilon 1e-3, momentum 0.99, optional gamma (scale) and
// beta (center); moving_mean (zeros) and moving_variance (ones) are buffers. It uses batch
// statistics only when the module is training AND trainable (a frozen layer runs in inference mode).
class BatchNormalization : public Module {
 public:
  BatchNormalization(const std::string& name, int64_t channels, bool scale = true,
                     bool center = true, double momentum = 0.99, double epsilon = 1e-3);
  std::string type_name() const override { return "BatchNormalization"; }
  Tensor forward(const Tensor& x);

  Tensor gamma, beta, moving_mean, moving_variance;
  bool scale, center;
  double momentum, epsilon;
};

// LayerNormalization over the last axis, epsilon 1e-3 (Keras's default, not PyTorch's 1e-5).
class LayerNormalization : public Module {
 public:
  LayerNormalization(const std::string& name, int64_t features, double epsilon = 1e-3);
  std::string type_name() const override { return "LayerNormalization"; }
  Tensor forward(const Tensor& x) const;

  Tensor gamma, beta;
  double epsilon;
};

// Embedding: table (input_dim, output_dim) initialised U(-0.05, 0.05); ids are int32.
class Embedding : public Module {
 public:
  Embedding(const std::string& name, int64_t input_dim, int64_t output_dim, Generator& gen);
  std::string type_name() const override { return "Embedding"; }
  Tensor forward(const Tensor& ids) const;

  Tensor embeddings;
};

// Dropout: inverted dropout in training behaviour, identity otherwise. Each call draws a fresh
// mask from (seed, call counter), so runs are reproducible.
class Dropout : public Module {
 public:
  Dropout(const std::string& name, double rate, uint64_t seed = 0);
  std::string type_name() const override { return "Dropout"; }
  Tensor forward(const Tensor& x);

  double rate;
  uint64_t seed;
  uint64_t calls = 0;
};

// Stateless layers as functions (Keras's MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
// Add, Concatenate, Reshape).
Tensor max_pooling2d(const Tensor& x, int pool, int stride, Padding padding);
Tensor average_pooling2d(const Tensor& x, int pool, int stride, Padding padding);
Tensor global_average_pooling2d(const Tensor& x);  // [N, H, W, C] -> [N, C]

}  // namespace glimpse::nn
