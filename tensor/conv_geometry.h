// The padding model and options of conv2d and the 2D poolings (tensor/ops.h).
//
// Underneath, padding is explicit: (before, after) cells of zeros (convolution) or of nothing
// (pooling) on each spatial axis, which need not be equal. Frameworks describe it in other terms,
// and each has a way to compute the pairs here:
//   Keras/TF "valid"            Padding::Valid or Padding2d::valid()          no padding
//   Keras/TF "same"             Padding::Same or Padding2d::same()            = ONNX SAME_UPPER
//   ONNX auto_pad SAME_LOWER    Padding2d::same_lower()
//   PyTorch padding=(ph, pw)    Padding2d::symmetric(ph, pw)                  ph rows top and bottom
//   ONNX pads (NOTSET)          Padding2d::onnx({top, left, bottom, right})   [x1_begin, x2_begin,
//                                                                            x1_end, x2_end]
// The "same" rules depend on the input size, so they are resolved by the op itself: the output is
// ceil(in / stride) and the total padding max(0, (out - 1) * stride + (k - 1) * dilation + 1 - in)
// is split in two, the odd cell after (SAME_UPPER, TF) or before (SAME_LOWER).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace glimpse {

// Keras's two padding modes, kept as the short way to ask for them.
enum class Padding { Same, Valid };
const char* padding_name(Padding padding);

struct Padding2d {
  enum class Rule { Explicit, SameUpper, SameLower };
  Rule rule = Rule::Explicit;
  // Rule::Explicit only; the "same" rules compute their own.
  int64_t top = 0, bottom = 0, left = 0, right = 0;

  Padding2d() = default;  // no padding ("valid")
  // Implicit, so that every call written with Padding::Same / Padding::Valid keeps its meaning.
  Padding2d(Padding padding);  // NOLINT(google-explicit-constructor)
  static Padding2d valid() { return Padding2d(); }
  static Padding2d same() { return Padding2d(Rule::SameUpper); }
  static Padding2d same_lower() { return Padding2d(Rule::SameLower); }
  static Padding2d symmetric(int64_t pad_h, int64_t pad_w);
  static Padding2d explicit_pads(int64_t top, int64_t bottom, int64_t left, int64_t right);
  // ONNX's pads attribute of a 2D op: [top, left, bottom, right].
  static Padding2d onnx(const std::vector<int64_t>& pads);
  std::string str() const;  // "same", "same_lower", "valid" or "pads (t, b, l, r)"

 private:
  explicit Padding2d(Rule r) : rule(r) {}
};

// One spatial axis resolved: the output size and the padding actually used. With ceil_mode the
// output is rounded up, but a window must still start inside the input or its "before" padding
// (ONNX and PyTorch): then the last window may reach past the "after" padding, and those cells are
// ignored as padding is. ceil_mode only changes explicit padding: the "same" rules fix the output.
struct PaddingPlan {
  int64_t out, pad_before, pad_after = 0;
};
PaddingPlan plan_padding(int64_t in, int64_t kernel, int64_t stride, Padding padding);
// `axis` 0 is the height (top/bottom), 1 the width (left/right).
PaddingPlan plan_padding(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                         const Padding2d& padding, int axis, bool ceil_mode = false);

// conv2d: kernel [KH, KW, CIN / groups, COUT]. Groups split the input channels and the output
// channels into `groups` consecutive blocks; block g of the output sees only block g of the input
// (Keras Conv2D(groups=...)). groups == CIN is a depthwise convolution with channel multiplier
// COUT / CIN: output channel c * multiplier + m reads input channel c only (Keras
// DepthwiseConv2D, whose kernel [KH, KW, CIN, multiplier] is this kernel reshaped).
// Dilation d spaces the kernel's taps d cells apart (Keras dilation_rate, ONNX dilations).
//
// ONNX Conv onto these options (after transposing NCHW -> NHWC and the weight
// [COUT, CIN / group, KH, KW] -> [KH, KW, CIN / group, COUT]):
//   strides [sh, sw] -> stride_h, stride_w     dilations [dh, dw] -> dilation_h, dilation_w
//   group -> groups                            pads / auto_pad -> padding (see the table above)
struct Conv2dOptions {
  int stride_h = 1, stride_w = 1;
  Padding2d padding;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

// max_pool2d / avg_pool2d. ONNX MaxPool / AveragePool onto these options:
//   kernel_shape -> the pool size      strides -> stride_h, stride_w (ONNX's default is 1)
//   pads / auto_pad -> padding         ceil_mode -> ceil_mode
//   dilations -> dilation_h, dilation_w (max pooling only)
//   count_include_pad -> count_include_pad (average pooling only)
// count_include_pad: the average divides by the window's cells inside input + explicit padding
// (padding counted as zeros; cells past the padding, reached only with ceil_mode, are not);
// without it by the real cells only, which is what Keras/TF "same" average pooling does.
struct Pool2dOptions {
  int stride_h = 1, stride_w = 1;
  Padding2d padding;
  int dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false;
  bool count_include_pad = false;
};

}  // namespace glimpse
