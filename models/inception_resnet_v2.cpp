// Inception-ResNet-v2, block by block in the order keras/applications/inception_resnet_v2.py
// creates its layers (which is also the order its weights are saved in).
#include "models/inception_resnet_v2.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "tensor/autograd.h"

namespace glimpse::models {

InceptionConfig InceptionConfig::full() { return InceptionConfig{}; }

InceptionConfig InceptionConfig::tiny() {
  InceptionConfig c;
  c.image_size = 128;
  c.width_divisor = 8;
  c.repeats_block35 = 1;
  c.repeats_block17 = 1;
  c.repeats_block8 = 1;
  c.valid_reductions = false;
  return c;
}

ConvBN::ConvBN(const std::string& conv_name, const std::string& bn_name, int64_t cin,
               int64_t filters, int kh, int kw, int stride, Padding padding, bool act,
               bool use_bias, Generator& gen)
    : nn::Module(conv_name), activation(act) {
  register_module(conv, std::make_unique<nn::Conv2D>(conv_name, cin, filters, kh, kw, gen, stride,
                                                     padding, use_bias));
  if (!use_bias)
    register_module(bn, std::make_unique<nn::BatchNormalization>(bn_name, filters,
                                                                 /*scale=*/false));
}

// ---- BatchNorm folding ---------------------------------------------------------------------------

namespace {

constexpr int kKernelSamples = 64;

// The tensors a unit's snapshot is computed from: conv kernel and bias, then BN gamma, beta,
// moving mean and variance (undefined where the unit has none).
std::vector<Tensor> fold_sources(const nn::Conv2D& conv, const nn::BatchNormalization* bn) {
  if (!bn) return {conv.kernel, conv.bias, Tensor(), Tensor(), Tensor(), Tensor()};
  return {conv.kernel, conv.bias, bn->gamma, bn->beta, bn->moving_mean, bn->moving_variance};
}

// Element i of a contiguous float CPU tensor, as a double.
double element_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::F64 ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
}

// Whether the kernel still holds `samples` at `positions`. The kernels of a whole network are far
// bigger than the caches, so each sample is a load from memory: read one after another through
// element_at they took 0.8% of a 1-thread batch-1 forward's `perf` samples; gathered first, with
// no branch between the loads, the processor overlaps them (0.6%).
template <class T>
bool same_samples_as(const T* data, const std::vector<int64_t>& positions,
                     const std::vector<double>& samples) {
  if (positions.size() != samples.size() || positions.size() > kKernelSamples) return false;
  std::array<double, kKernelSamples> now;  // on the stack: this runs for every conv of a forward
  for (size_t i = 0; i < positions.size(); ++i) now[i] = static_cast<double>(data[positions[i]]);
  return std::equal(samples.begin(), samples.end(), now.begin());
}

bool same_samples(const Tensor& kernel, const std::vector<int64_t>& positions,
                  const std::vector<double>& samples) {
  return kernel.dtype() == DType::F64 ? same_samples_as(kernel.data<double>(), positions, samples)
                                      : same_samples_as(kernel.data<float>(), positions, samples);
}

std::vector<int64_t> sample_positions(int64_t n) {
  std::vector<int64_t> positions;
  if (n <= 0) return positions;
  for (int i = 0; i < kKernelSamples; ++i)
    positions.push_back(n == 1 ? 0 : static_cast<int64_t>(i) * (n - 1) / (kKernelSamples - 1));
  return positions;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  if (a.shape() != b.shape() || a.dtype() != b.dtype() || !a.is_contiguous() || !b.is_contiguous())
    return false;
  const size_t element = dtype_size(a.dtype());
  const char* pa = static_cast<const char*>(a.impl()->storage->data) + a.offset() * element;
  const char* pb = static_cast<const char*>(b.impl()->storage->data) + b.offset() * element;
  return std::memcmp(pa, pb, static_cast<size_t>(a.numel()) * element) == 0;
}

}  // namespace

struct ConvBN::Folded {
  // The conv's kernel scaled per output channel, and the matching bias. On the CPU the kernel is
  // kept only in packed form (tensor/cpu/packed_gemm.h), which the forward then uses.
  Tensor kernel, bias;
  PackedConvKernel packed;
  DType dtype;
  double output_scale;
  // What they were computed from, to notice weights that were replaced or changed since.
  std::vector<const TensorImpl*> sources;
  std::vector<Tensor> small_sources;  // copies of every source but the kernel (CPU)
  std::vector<int64_t> sample_positions;
  std::vector<double> kernel_samples;  // conv kernel values at sample_positions (CPU)
  double epsilon;
  Device device;

  // The unit as one fused conv: relu?(conv(x) + bias (+ residual)), with whichever kernel is kept.
  Tensor forward(const Tensor& x, int stride, Padding padding, bool relu,
                 const Tensor& residual = Tensor()) const {
    if (packed.defined())
      return conv2d_bias_activation(x, packed, bias, stride, stride, padding, relu, residual);
    return conv2d_bias_activation(x, kernel, bias, stride, stride, padding, relu, residual);
  }
};

void ConvBN::fold_batch_norm(double output_scale) {
  if (!bn && !conv->use_bias) return;
  NoGradGuard no_grad;
  auto folded = std::make_shared<Folded>();
  const Tensor& kernel = conv->kernel;
  const Device device = kernel.device();
  // BN: y = (conv + conv_bias - mean) * s + beta with s = gamma / sqrt(var + eps); times the
  // output scale: kernel' = kernel * s', bias' = (conv_bias - mean) * s' + beta * scale, with
  // s' = s * scale (over cout, the last axis). Without BN: kernel * scale, conv_bias * scale.
  const int64_t cout = kernel.shape()[3];
  Tensor scale = Tensor::full({cout}, output_scale, kernel.dtype(), device);
  Tensor shift = conv->use_bias ? conv->bias : Tensor::zeros({cout}, kernel.dtype(), device);
  Tensor bias_after = Tensor::zeros({cout}, kernel.dtype(), device);
  if (bn) {
    scale = div(scale, sqrt(add_scalar(bn->moving_variance, bn->epsilon)));
    if (bn->gamma.defined()) scale = mul(scale, bn->gamma);
    shift = sub(shift, bn->moving_mean);
    Tensor beta = bn->beta.device() == device ? bn->beta : bn->beta.to(device);
    bias_after = mul_scalar(beta, output_scale);
  }
  folded->kernel = mul(kernel, scale).contiguous();
  folded->bias = add(mul(shift, scale), bias_after).contiguous();
  folded->dtype = kernel.dtype();
  if (device == Device::CPU) {
    folded->packed = pack_conv_kernel(folded->kernel);
    folded->kernel = Tensor();
  }
  folded->output_scale = output_scale;
  const std::vector<Tensor> sources = fold_sources(*conv, bn.get());
  for (const Tensor& t : sources) folded->sources.push_back(t.defined() ? t.impl() : nullptr);
  folded->epsilon = bn ? bn->epsilon : 0.0;
  folded->device = device;
  if (device == Device::CPU) {
    for (size_t i = 1; i < sources.size(); ++i)
      folded->small_sources.push_back(sources[i].defined() ? sources[i].clone() : Tensor());
    folded->sample_positions = sample_positions(kernel.numel());
    for (int64_t i : folded->sample_positions) folded->kernel_samples.push_back(element_at(kernel, i));
  }
  folded_ = std::move(folded);
}

bool ConvBN::folded_usable(const Tensor& x, double output_scale) const {
  if (!folded_ || (bn && bn->training_behaviour())) return false;
  const std::vector<Tensor> sources = fold_sources(*conv, bn.get());
  if (any_requires_grad({x, sources[0], sources[1], sources[2], sources[3]})) return false;
  if (folded_->output_scale != output_scale) return false;
  for (size_t i = 0; i < sources.size(); ++i)
    if ((sources[i].defined() ? sources[i].impl() : nullptr) != folded_->sources[i]) return false;
  if ((bn ? bn->epsilon : 0.0) != folded_->epsilon || conv->kernel.device() != folded_->device ||
      x.device() != folded_->device || x.dtype() != folded_->dtype)
    return false;
  if (folded_->device == Device::CPU) {
    for (size_t i = 1; i < sources.size(); ++i)
      if (!same_bytes(sources[i], folded_->small_sources[i - 1])) return false;
    if (!conv->kernel.is_contiguous()) return false;
    if (!same_samples(conv->kernel, folded_->sample_positions, folded_->kernel_samples))
      return false;
  }
  return true;
}

const ConvBN::Folded* ConvBN::usable_fold(const Tensor& x, double output_scale) {
  if (!folded_ || folded_->output_scale != output_scale) return nullptr;  // kept for its own use
  if (folded_usable(x, output_scale)) return folded_.get();
  folded_.reset();  // stale, or training may be about to change the weights: never reused
  return nullptr;
}

Tensor ConvBN::forward(const Tensor& x) {
  const int stride = conv->stride;
  if (const Folded* f = usable_fold(x, 1.0)) return f->forward(x, stride, conv->padding, activation);
  if (!bn && conv->use_bias && conv->activation == nn::Activation::None)
    return conv2d_bias_activation(x, conv->kernel, conv->bias, stride, stride, conv->padding,
                                  activation);
  Tensor y = conv->forward(x);
  if (bn) y = bn->forward(y);
  return activation ? relu(y) : y;
}

Tensor ConvBN::forward_residual(const Tensor& x, const Tensor& residual, double scale,
                                bool relu_after) {
  if (!activation) {
    if (const Folded* f = usable_fold(x, scale))
      return f->forward(x, conv->stride, conv->padding, relu_after, residual);
  }
  Tensor y = add(residual, mul_scalar(forward(x), scale));
  return relu_after ? relu(y) : y;
}

int64_t InceptionResNetV2::f(int64_t keras_filters) const {
  if (config_.width_divisor == 1) return keras_filters;
  return std::max<int64_t>(4, static_cast<int64_t>(std::lround(
                                  static_cast<double>(keras_filters) / config_.width_divisor)));
}

Padding InceptionResNetV2::reduction_padding() const {
  return config_.valid_reductions ? Padding::Valid : Padding::Same;
}

ConvBN& InceptionResNetV2::make(const std::string& slim_name, int64_t cin, int64_t filters, int kh,
                                int kw, int stride, Padding padding, bool activation, bool use_bias,
                                const std::string& name) {
  std::string conv_name = name, bn_name = name.empty() ? "" : name + "_bn";
  if (name.empty()) {
    // Keras automatic names: the first layer of a kind has no suffix, then _1, _2, ...
    conv_name = conv_counter_ == 0 ? "conv2d" : "conv2d_" + std::to_string(conv_counter_);
    ++conv_counter_;
    if (!use_bias) {
      bn_name = bn_counter_ == 0 ? "batch_normalization"
                                 : "batch_normalization_" + std::to_string(bn_counter_);
      ++bn_counter_;
    }
  }
  units_.push_back(std::make_unique<ConvBN>(conv_name, bn_name, cin, filters, kh, kw, stride,
                                            padding, activation, use_bias, *gen_));
  units_.back()->slim_name = slim_name;
  register_child(*units_.back());
  return *units_.back();
}

InceptionResNetV2::InceptionResNetV2(const InceptionConfig& config, Generator& gen,
                                     const std::string& name)
    : nn::Module(name), config_(config), gen_(&gen) {
  const Padding same = Padding::Same, red = reduction_padding();
  auto idx = [this] { return static_cast<int>(units_.size()) - 1; };
  auto out_size = [](int64_t in, int k, int s, Padding p) { return plan_padding(in, k, s, p).out; };

  // Stem.
  int64_t size = config.image_size;
  make("Conv2d_1a_3x3", 3, f(32), 3, 3, 2, red);          stem_.push_back(idx()); size = out_size(size, 3, 2, red);
  make("Conv2d_2a_3x3", f(32), f(32), 3, 3, 1, red);      stem_.push_back(idx()); size = out_size(size, 3, 1, red);
  make("Conv2d_2b_3x3", f(32), f(64), 3, 3, 1, same);     stem_.push_back(idx());
  size = out_size(size, 3, 2, red);      // max-pool 3/2
  make("Conv2d_3b_1x1", f(64), f(80), 1, 1, 1, red);      stem_.push_back(idx());
  make("Conv2d_4a_3x3", f(80), f(192), 3, 3, 1, red);     stem_.push_back(idx()); size = out_size(size, 3, 1, red);
  size = out_size(size, 3, 2, red);      // max-pool 3/2
  if (size < 1) throw std::invalid_argument("InceptionResNetV2: image_size is too small");

  // mixed_5b: [96 1x1] [48 1x1 -> 64 5x5] [64 1x1 -> 96 3x3 -> 96 3x3] [avg-pool -> 64 1x1]
  int64_t c = f(192);
  mixed_5b_.resize(4);
  make("Mixed_5b_Branch_0_Conv2d_1x1", c, f(96), 1, 1, 1, same); mixed_5b_[0].push_back(idx());
  make("Mixed_5b_Branch_1_Conv2d_0a_1x1", c, f(48), 1, 1, 1, same); mixed_5b_[1].push_back(idx());
  make("Mixed_5b_Branch_1_Conv2d_0b_5x5", f(48), f(64), 5, 5, 1, same); mixed_5b_[1].push_back(idx());
  make("Mixed_5b_Branch_2_Conv2d_0a_1x1", c, f(64), 1, 1, 1, same); mixed_5b_[2].push_back(idx());
  make("Mixed_5b_Branch_2_Conv2d_0b_3x3", f(64), f(96), 3, 3, 1, same); mixed_5b_[2].push_back(idx());
  make("Mixed_5b_Branch_2_Conv2d_0c_3x3", f(96), f(96), 3, 3, 1, same); mixed_5b_[2].push_back(idx());
  make("Mixed_5b_Branch_3_Conv2d_0b_1x1", c, f(64), 1, 1, 1, same); mixed_5b_[3].push_back(idx());
  c = f(96) + f(64) + f(96) + f(64);

  auto residual = [&](const std::string& type, int block_idx, double scale, bool activation,
                      std::vector<Residual>& blocks) {
    // TF-slim block name: Block35_1, Block17_3, Block8_10 ...
    const std::string B = std::string(1, static_cast<char>(std::toupper(type[0]))) + type.substr(1) + "_" +
                          std::to_string(block_idx);
    Residual r;
    r.scale = scale;
    r.activation = activation;
    int64_t mixed = 0;
    if (type == "block35") {
      r.branches.resize(3);
      make(B + "_Branch_0_Conv2d_1x1", c, f(32), 1, 1, 1, same); r.branches[0].push_back(idx());
      make(B + "_Branch_1_Conv2d_0a_1x1", c, f(32), 1, 1, 1, same); r.branches[1].push_back(idx());
      make(B + "_Branch_1_Conv2d_0b_3x3", f(32), f(32), 3, 3, 1, same); r.branches[1].push_back(idx());
      make(B + "_Branch_2_Conv2d_0a_1x1", c, f(32), 1, 1, 1, same); r.branches[2].push_back(idx());
      make(B + "_Branch_2_Conv2d_0b_3x3", f(32), f(48), 3, 3, 1, same); r.branches[2].push_back(idx());
      make(B + "_Branch_2_Conv2d_0c_3x3", f(48), f(64), 3, 3, 1, same); r.branches[2].push_back(idx());
      mixed = f(32) + f(32) + f(64);
    } else if (type == "block17") {
      r.branches.resize(2);
      make(B + "_Branch_0_Conv2d_1x1", c, f(192), 1, 1, 1, same); r.branches[0].push_back(idx());
      make(B + "_Branch_1_Conv2d_0a_1x1", c, f(128), 1, 1, 1, same);      r.branches[1].push_back(idx());
      make(B + "_Branch_1_Conv2d_0b_1x7", f(128), f(160), 1, 7, 1, same); r.branches[1].push_back(idx());
      make(B + "_Branch_1_Conv2d_0c_7x1", f(160), f(192), 7, 1, 1, same); r.branches[1].push_back(idx());
      mixed = f(192) + f(192);
    } else {
      r.branches.resize(2);
      make(B + "_Branch_0_Conv2d_1x1", c, f(192), 1, 1, 1, same); r.branches[0].push_back(idx());
      make(B + "_Branch_1_Conv2d_0a_1x1", c, f(192), 1, 1, 1, same);      r.branches[1].push_back(idx());
      make(B + "_Branch_1_Conv2d_0b_1x3", f(192), f(224), 1, 3, 1, same); r.branches[1].push_back(idx());
      make(B + "_Branch_1_Conv2d_0c_3x1", f(224), f(256), 3, 1, 1, same); r.branches[1].push_back(idx());
      mixed = f(192) + f(256);
    }
    make(B + "_Conv2d_1x1", mixed, c, 1, 1, 1, same, /*activation=*/false, /*use_bias=*/true,
         type + "_" + std::to_string(block_idx) + "_conv");
    r.up = idx();
    blocks.push_back(std::move(r));
  };

  for (int i = 1; i <= config.repeats_block35; ++i) residual("block35", i, 0.17, true, block35_);

  // mixed_6a: [384 3/2] [256 1x1 -> 256 3x3 -> 384 3/2] [max-pool 3/2]
  mixed_6a_.resize(2);
  make("Mixed_6a_Branch_0_Conv2d_1a_3x3", c, f(384), 3, 3, 2, red); mixed_6a_[0].push_back(idx());
  make("Mixed_6a_Branch_1_Conv2d_0a_1x1", c, f(256), 1, 1, 1, same); mixed_6a_[1].push_back(idx());
  make("Mixed_6a_Branch_1_Conv2d_0b_3x3", f(256), f(256), 3, 3, 1, same); mixed_6a_[1].push_back(idx());
  make("Mixed_6a_Branch_1_Conv2d_1a_3x3", f(256), f(384), 3, 3, 2, red); mixed_6a_[1].push_back(idx());
  c = f(384) + f(384) + c;
  size = out_size(size, 3, 2, red);

  for (int i = 1; i <= config.repeats_block17; ++i) residual("block17", i, 0.10, true, block17_);

  // mixed_7a: [256 1x1 -> 384 3/2] [256 1x1 -> 288 3/2] [256 1x1 -> 288 3x3 -> 320 3/2] [pool]
  mixed_7a_.resize(3);
  make("Mixed_7a_Branch_0_Conv2d_0a_1x1", c, f(256), 1, 1, 1, same); mixed_7a_[0].push_back(idx());
  make("Mixed_7a_Branch_0_Conv2d_1a_3x3", f(256), f(384), 3, 3, 2, red); mixed_7a_[0].push_back(idx());
  make("Mixed_7a_Branch_1_Conv2d_0a_1x1", c, f(256), 1, 1, 1, same); mixed_7a_[1].push_back(idx());
  make("Mixed_7a_Branch_1_Conv2d_1a_3x3", f(256), f(288), 3, 3, 2, red); mixed_7a_[1].push_back(idx());
  make("Mixed_7a_Branch_2_Conv2d_0a_1x1", c, f(256), 1, 1, 1, same); mixed_7a_[2].push_back(idx());
  make("Mixed_7a_Branch_2_Conv2d_0b_3x3", f(256), f(288), 3, 3, 1, same); mixed_7a_[2].push_back(idx());
  make("Mixed_7a_Branch_2_Conv2d_1a_3x3", f(288), f(320), 3, 3, 2, red); mixed_7a_[2].push_back(idx());
  c = f(384) + f(288) + f(320) + c;
  size = out_size(size, 3, 2, red);

  // block8 x N; the last one has scale 1 and no activation.
  for (int i = 1; i <= config.repeats_block8; ++i) {
    const bool last = i == config.repeats_block8;
    residual("block8", i, last ? 1.0 : 0.20, !last, block8_);
  }

  make("Conv2d_7b_1x1", c, f(1536), 1, 1, 1, same, true, false, "conv_7b");
  conv_7b_ = idx();
  output_channels_ = f(1536);
  grid_size_ = size;
  gen_ = nullptr;  // the caller's generator: only make() uses it, and only during construction
  if (grid_size_ < 1)
    throw std::invalid_argument("InceptionResNetV2: image_size " +
                                std::to_string(config.image_size) + " is too small (min 75)");
}

void InceptionResNetV2::fold_batch_norm() {
  for (auto& unit : units_) unit->fold_batch_norm();
  // Each residual block's up conv with the block's scale (for forward_residual).
  for (const auto* blocks : {&block35_, &block17_, &block8_})
    for (const Residual& r : *blocks) units_[r.up]->fold_batch_norm(r.scale);
}

void InceptionResNetV2::unfold_batch_norm() {
  for (auto& unit : units_) unit->unfold_batch_norm();
}

bool InceptionResNetV2::batch_norm_folded() const {
  for (const auto& unit : units_)
    if ((unit->bn || unit->conv->use_bias) && !unit->batch_norm_folded()) return false;
  return true;
}

std::vector<ConvBN*> InceptionResNetV2::layers_in_order() const {
  std::vector<ConvBN*> out;
  for (const auto& u : units_) out.push_back(u.get());
  return out;
}

std::vector<KerasLayerNode> InceptionResNetV2::keras_graph() const {
  std::vector<KerasLayerNode> g;
  auto add = [&g](const char* class_name, std::vector<int> inputs, const ConvBN* unit = nullptr) {
    g.push_back({class_name, std::move(inputs), unit});
    return static_cast<int>(g.size()) - 1;
  };
  // conv2d_bn: Conv2D, then BatchNormalization unless the conv has a bias, then Activation.
  auto unit = [&](int index, int x) {
    const ConvBN* u = units_[index].get();
    x = add("Conv2D", {x}, u);
    if (u->bn) x = add("BatchNormalization", {x}, u);
    return u->activation ? add("Activation", {x}) : x;
  };
  auto chain = [&](const std::vector<int>& indices, int x) {
    for (int i : indices) x = unit(i, x);
    return x;
  };
  auto residual = [&](const Residual& r, int x) {
    std::vector<int> branches;
    for (const auto& b : r.branches) branches.push_back(chain(b, x));
    const int up = unit(r.up, add("Concatenate", branches));
    const int sum = add("Lambda", {x, up});
    return r.activation ? add("Activation", {sum}) : sum;
  };
  int x = add("InputLayer", {});
  x = chain({stem_[0], stem_[1], stem_[2]}, x);
  x = add("MaxPooling2D", {x});
  x = chain({stem_[3], stem_[4]}, x);
  x = add("MaxPooling2D", {x});
  {
    const int b0 = chain(mixed_5b_[0], x), b1 = chain(mixed_5b_[1], x), b2 = chain(mixed_5b_[2], x);
    const int b3 = chain(mixed_5b_[3], add("AveragePooling2D", {x}));
    x = add("Concatenate", {b0, b1, b2, b3});
  }
  for (const Residual& r : block35_) x = residual(r, x);
  {
    const int b0 = chain(mixed_6a_[0], x), b1 = chain(mixed_6a_[1], x);
    x = add("Concatenate", {b0, b1, add("MaxPooling2D", {x})});
  }
  for (const Residual& r : block17_) x = residual(r, x);
  {
    const int b0 = chain(mixed_7a_[0], x), b1 = chain(mixed_7a_[1], x), b2 = chain(mixed_7a_[2], x);
    x = add("Concatenate", {b0, b1, b2, add("MaxPooling2D", {x})});
  }
  for (const Residual& r : block8_) x = residual(r, x);
  unit(conv_7b_, x);
  return g;
}

Tensor InceptionResNetV2::forward(const Tensor& images) {
  if (images.rank() != 4 || images.shape()[3] != 3)
    throw std::invalid_argument("InceptionResNetV2: expected images [B, H, W, 3], got " +
                                shape_str(images.shape()));
  const Padding red = reduction_padding();
  auto run = [this](const std::vector<int>& chain, Tensor x) {
    for (int i : chain) x = units_[i]->forward(x);
    return x;
  };
  Tensor x = images;
  x = units_[stem_[0]]->forward(x);
  x = units_[stem_[1]]->forward(x);
  x = units_[stem_[2]]->forward(x);
  x = max_pool2d(x, 3, 3, 2, 2, red);
  x = units_[stem_[3]]->forward(x);
  x = units_[stem_[4]]->forward(x);
  x = max_pool2d(x, 3, 3, 2, 2, red);

  x = concat({run(mixed_5b_[0], x), run(mixed_5b_[1], x), run(mixed_5b_[2], x),
              run(mixed_5b_[3], avg_pool2d(x, 3, 3, 1, 1, Padding::Same))},
             3);

  auto residual_forward = [&](const Residual& r, const Tensor& in) {
    std::vector<Tensor> outs;
    for (const auto& b : r.branches) outs.push_back(run(b, in));
    return units_[r.up]->forward_residual(outs.size() == 1 ? outs[0] : concat(outs, 3), in,
                                          r.scale, r.activation);
  };
  for (const Residual& r : block35_) x = residual_forward(r, x);

  x = concat({run(mixed_6a_[0], x), run(mixed_6a_[1], x), max_pool2d(x, 3, 3, 2, 2, red)}, 3);
  for (const Residual& r : block17_) x = residual_forward(r, x);

  x = concat({run(mixed_7a_[0], x), run(mixed_7a_[1], x), run(mixed_7a_[2], x),
              max_pool2d(x, 3, 3, 2, 2, red)},
             3);
  for (const Residual& r : block8_) x = residual_forward(r, x);
  return units_[conv_7b_]->forward(x);
}

}  // namespace glimpse::models
