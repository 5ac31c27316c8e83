// Inception-ResNet-v2 as Keras builds it (include_top=False), and "tiny", a small member of the
// same family for CPU training on the shapes dataset.
//
// Layer names follow Keras's automatic naming (conv2d, conv2d_1, ..., batch_normalization_N,
// block35_1_conv, conv_7b, conv_7b_bn), so tf.keras-saved weight files map by name; the official
// ImageNet file maps by its TF-slim names (ConvBN::slim_name), and any other valid file by
// structure, through keras_graph() (models/keras_import.h).
#pragma once
#include <memory>
#include <vector>

#include "nn/layers.h"

namespace glimpse::models {

struct InceptionConfig {
  int image_size = 299;
  // Filter counts are Keras's divided by this (at least 4): 1 = the real network.
  int width_divisor = 1;
  int repeats_block35 = 10, repeats_block17 = 20, repeats_block8 = 10;
  // Keras pads every strided stem/reduction op VALID (299 -> 8x8). "tiny" pads them SAME so a
  // 128x128 image still leaves a 4x4 attention grid.
  bool valid_reductions = true;

  static InceptionConfig full();  // 299x299 -> 8x8x1536, 54,336,736 parameters
  static InceptionConfig tiny();  // 128x128 -> 4x4 grid, a few hundred thousand parameters
};

// conv2d_bn of Keras: Conv2D (no bias) -> BatchNormalization(scale=False) -> ReLU; with
// use_bias the BN is skipped, with activation=false the ReLU is skipped.
class ConvBN : public nn::Module {
 public:
  ConvBN(const std::string& conv_name, const std::string& bn_name, int64_t cin, int64_t filters,
         int kh, int kw, int stride, Padding padding, bool activation, bool use_bias,
         Generator& gen);
  std::string type_name() const override { return "conv2d_bn"; }
  Tensor forward(const Tensor& x);

  // relu?(residual + scale * forward(x)) with this unit's ReLU off: the end of a residual block.
  Tensor forward_residual(const Tensor& x, const Tensor& residual, double scale, bool relu_after);

  // Inference snapshot (see InceptionResNetV2::fold_batch_norm): the BatchNorm folded into the
  // kernel and a bias, everything multiplied by `output_scale` (a residual block's scale, taken
  // by forward_residual with that scale; plain forward() uses only a snapshot with scale 1).
  void fold_batch_norm(double output_scale = 1.0);
  void unfold_batch_norm() { folded_.reset(); }
  bool batch_norm_folded() const { return folded_ != nullptr; }

  std::unique_ptr<nn::Conv2D> conv;
  std::unique_ptr<nn::BatchNormalization> bn;
  bool activation;
  // The TF-slim name of this unit in the official ImageNet file (e.g. "Block35_1_Branch_2_Conv2d_0b_3x3";
  // its BN is that name + "_BatchNorm").
  std::string slim_name;

 private:
  struct Folded;
  bool folded_usable(const Tensor& x, double output_scale) const;
  // The snapshot if usable for this input and scale, else null (and the snapshot is dropped).
  const Folded* usable_fold(const Tensor& x, double output_scale);
  std::shared_ptr<const Folded> folded_;  // shared_ptr: Folded is complete only in the .cpp
};

// One layer of the network as Keras's functional API sees it (include_top=False), weightless ones
// included: what Keras needs to derive `model.layers`, the order its weight files list layers in
// (models/keras_import.cpp).
struct KerasLayerNode {
  std::string class_name;   // Keras class: "InputLayer", "Conv2D", "BatchNormalization", ...
  std::vector<int> inputs;  // indices (into the graph) of the layers it is called on, in call order
  const ConvBN* unit = nullptr;  // Conv2D and BatchNormalization: the unit the layer belongs to
};

class InceptionResNetV2 : public nn::Module {
 public:
  InceptionResNetV2(const InceptionConfig& config, Generator& gen,
                    const std::string& name = "encoder");
  std::string type_name() const override { return "InceptionResNetV2"; }
  // images [B, H, W, 3] scaled to [-1, 1] -> features [B, h, w, C]
  Tensor forward(const Tensor& images);
  int64_t output_channels() const { return output_channels_; }
  int64_t grid_size() const { return grid_size_; }  // h = w of the output for config.image_size
  const InceptionConfig& config() const { return config_; }
  // Conv and BN layers in creation order (the order Keras creates and saves them).
  std::vector<ConvBN*> layers_in_order() const;
  // The Keras layer graph of this network, exactly as keras.applications wires it (a Lambda or
  // CustomScaleLayer for each residual sum, called on [block input, up conv]); the last node is the
  // model's output.
  std::vector<KerasLayerNode> keras_graph() const;

  // Inference-time BatchNorm folding for a frozen encoder. fold_batch_norm() snapshots, for each
  // conv2d_bn unit, the kernel scaled by 1/sqrt(moving_variance + epsilon) (times gamma) and the
  // bias beta - moving_mean * that scale; a forward that needs no gradients and whose BatchNorms
  // run in inference mode then computes each unit as one conv whose epilogue adds the bias and
  // applies the ReLU (what ONNX Runtime's graph optimiser does), instead of conv, BN and ReLU passes.
  // Each residual block's up conv gets its block's scale folded in, and its epilogue adds the
  // block's input and applies the block's ReLU (no separate scale, add and ReLU passes). On the
  // CPU the folded kernel is kept packed for glimpse's own GEMM (pack_conv_kernel), which reads a
  // windowed conv's input in place (tensor/cpu/packed_gemm.h).
  //
  // The snapshot is of the weights at the time of the call: call it after the weights are loaded,
  // and again after changing them in place. As a safety net a unit falls back to the unfolded path,
  // and drops its snapshot, when its tensors were replaced (to(device), assignment), when its
  // BatchNorm statistics or sampled kernel values differ from the snapshot (CPU), or when a forward
  // needs gradients or BatchNorm's training behaviour (training may be about to change the weights).
  void fold_batch_norm();
  void unfold_batch_norm();
  bool batch_norm_folded() const;  // every unit holds a snapshot

 private:
  ConvBN& make(const std::string& slim_name, int64_t cin, int64_t filters, int kh, int kw,
               int stride, Padding padding, bool activation = true, bool use_bias = false,
               const std::string& name = "");
  int64_t f(int64_t keras_filters) const;  // filters after the width divisor
  Padding reduction_padding() const;

  InceptionConfig config_;
  Generator* gen_;  // the constructor's generator, for make(); null once construction is over
  int conv_counter_ = 0, bn_counter_ = 0;
  std::vector<std::unique_ptr<ConvBN>> units_;
  int64_t output_channels_ = 0, grid_size_ = 0;

  // Stem and mixed blocks: indices into units_.
  std::vector<int> stem_;
  std::vector<std::vector<int>> mixed_5b_, mixed_6a_, mixed_7a_;
  struct Residual {
    std::vector<std::vector<int>> branches;
    int up;
    double scale;
    bool activation;
  };
  std::vector<Residual> block35_, block17_, block8_;
  int conv_7b_ = -1;
};

}  // namespace glimpse::models
