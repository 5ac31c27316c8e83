// Padding arithmetic of conv2d and the poolings (see tensor/conv_geometry.h for the model).
#include "tensor/conv_geometry.h"

#include <algorithm>
#include <stdexcept>

namespace glimpse {

const char* padding_name(Padding padding) { return padding == Padding::Same ? "same" : "valid"; }

Padding2d::Padding2d(Padding padding)
    : rule(padding == Padding::Same ? Rule::SameUpper : Rule::Explicit) {}

Padding2d Padding2d::explicit_pads(int64_t top, int64_t bottom, int64_t left, int64_t right) {
  if (top < 0 || bottom < 0 || left < 0 || right < 0)
    throw std::invalid_argument("Padding2d: padding must not be negative, got (top, bottom, left, "
                                "right) = (" + std::to_string(top) + ", " + std::to_string(bottom) +
                                ", " + std::to_string(left) + ", " + std::to_string(right) + ")");
  Padding2d p;
  p.top = top;
  p.bottom = bottom;
  p.left = left;
  p.right = right;
  return p;
}

Padding2d Padding2d::symmetric(int64_t pad_h, int64_t pad_w) {
  return explicit_pads(pad_h, pad_h, pad_w, pad_w);
}

Padding2d Padding2d::onnx(const std::vector<int64_t>& pads) {
  if (pads.size() != 4)
    throw std::invalid_argument("Padding2d::onnx: a 2D op's pads are [top, left, bottom, right], "
                                "got " + std::to_string(pads.size()) + " values");
  return explicit_pads(pads[0], pads[2], pads[1], pads[3]);
}

std::string Padding2d::str() const {
  switch (rule) {
    case Rule::SameUpper: return "same";
    case Rule::SameLower: return "same_lower";
    case Rule::Explicit: break;
  }
  if (top == 0 && bottom == 0 && left == 0 && right == 0) return "valid";
  return "pads (" + std::to_string(top) + ", " + std::to_string(bottom) + ", " +
         std::to_string(left) + ", " + std::to_string(right) + ")";
}

PaddingPlan plan_padding(int64_t in, int64_t kernel, int64_t stride, Padding padding) {
  return plan_padding(in, kernel, stride, 1, Padding2d(padding), 0, false);
}

PaddingPlan plan_padding(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                         const Padding2d& padding, int axis, bool ceil_mode) {
  const int64_t extent = (kernel - 1) * dilation + 1;  // input cells one window spans
  if (padding.rule != Padding2d::Rule::Explicit) {
    // out = ceil(in / s); the odd cell of the total goes after (SAME_UPPER) or before.
    const int64_t out = (in + stride - 1) / stride;
    const int64_t total = std::max<int64_t>(0, (out - 1) * stride + extent - in);
    const int64_t before =
        padding.rule == Padding2d::Rule::SameUpper ? total / 2 : total - total / 2;
    return {out, before, total - before};
  }
  const int64_t before = axis == 0 ? padding.top : padding.left;
  const int64_t after = axis == 0 ? padding.bottom : padding.right;
  const int64_t span = in + before + after - extent;  // room for the windows' starts
  if (span < 0) return {0, before, after};
  if (!ceil_mode) return {span / stride + 1, before, after};
  int64_t out = (span + stride - 1) / stride + 1;
  // The last window must start inside the input or the "before" padding.
  if ((out - 1) * stride >= in + before) --out;
  return {out, before, after};
}

}  // namespace glimpse
