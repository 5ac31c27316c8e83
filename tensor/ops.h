// The ops: every differentiable (and a few non-differentiable) tensor operations.
//
// Each op (1) checks its inputs and throws an std::invalid_argument naming the op and the
// offending shapes, (2) allocates its output on the inputs' device, (3) calls that device's
// kernel (tensor/kernels.h), and (4) when an input requires grad, records a node whose closure
// computes the input gradients — mostly by calling other ops, so second-order bookkeeping stays
// out of the kernels. Implementations are grouped by theme in tensor/ops_*.cpp.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/conv_geometry.h"
#include "tensor/tensor.h"

namespace glimpse {

// ---- element-wise (ops_elementwise.cpp) ---------------------------------------------------------
// Binary ops broadcast NumPy-style: shapes are aligned from the right, size-1 axes stretch.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor pow_scalar(const Tensor& x, double p);
// base^exponent per element, broadcasting (ONNX Pow); gradients at base 0 as PyTorch
// (tensor/elementwise_ops.h).
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
// x * Phi(x) with the exact normal CDF (Keras's gelu(approximate=False), PyTorch's default).
Tensor gelu(const Tensor& x);
// Any listed unary op by its enumerator (tensor/elementwise_ops.h), e.g. for list-driven tests;
// `param` is the scalar of the *Scalar ops. The named functions above call this.
Tensor unary(UnaryOp op, const Tensor& x, double param = 0.0);
// y = cond != 0 ? a : b (cond is a float mask; all three broadcast to one shape).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// y = mask != 0 ? value : x.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// Sums `grad` over broadcast axes so it has `shape` again (the adjoint of broadcasting).
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op_name);
Tensor broadcast_to(const Tensor& x, const Shape& shape);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& x, double s) { return add_scalar(x, s); }
inline Tensor operator-(const Tensor& x, double s) { return add_scalar(x, -s); }
inline Tensor operator*(const Tensor& x, double s) { return mul_scalar(x, s); }
inline Tensor operator/(const Tensor& x, double s) { return mul_scalar(x, 1.0 / s); }
inline Tensor operator*(double s, const Tensor& x) { return mul_scalar(x, s); }

// ---- reductions (ops_reduce.cpp) -----------------------------------------------------------------
// `axes` may be negative; an empty list means every axis.
Tensor sum(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
// Product (1 over an empty axis); its gradient is exact where x holds zeros (no division).
Tensor prod(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, int axis, bool keepdims = false);
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);
// No gradient: int32 indices along the last axis.
Tensor argmax(const Tensor& x);                                // [..., C] -> [...]
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k);    // values, int32 indices

// ---- shapes (ops_shape.cpp) ------------------------------------------------------------------------
Tensor reshape(const Tensor& x, Shape shape);                   // one -1 allowed
Tensor transpose(const Tensor& x, int axis0, int axis1);        // a view
Tensor permute(const Tensor& x, const std::vector<int>& order); // a view
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end);  // a view, [start, end)
Tensor concat(const std::vector<Tensor>& xs, int axis);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int axis);
Tensor squeeze(const Tensor& x, int axis);
Tensor unsqueeze(const Tensor& x, int axis);

// ---- linear algebra (ops_linalg.cpp) ---------------------------------------------------------------
// a [M, K] or [B, M, K] (or [..., M, K] folded into the batch), b [K, N] or [B, K, N];
// trans_a / trans_b transpose the last two axes first. [B, M, K] x [K, N] folds B into M.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// ---- neural-network ops (ops_nn.cpp) ---------------------------------------------------------------
// Embedding lookup: table [V, D], ids int32 [...] -> [..., D], ids in [0, V). Backward
// scatter-adds into table.
Tensor gather_rows(const Tensor& table, const Tensor& ids);
// NumPy take / ONNX Gather: x [before..., n, after...] (n on `axis`), int32 indices [I...] ->
// [before..., I..., after...]. Indices lie in [-n, n); a negative index -k picks n - k. The range
// is checked on the CPU; on an accelerator the kernel only wraps negatives (checking would cost
// a copy to the host per call). Differentiable in x.
Tensor gather(const Tensor& x, const Tensor& indices, int axis = 0);
// Fused log-softmax + NLL over logits [..., V] and int32 targets [...]. Targets equal to
// ignore_index are masked out; the result is sum(loss * mask) / max(sum(mask), 1), a scalar.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index = 0);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps);
// The same, also returning the per-row statistics it normalised with (rows = numel / C, each
// [rows]): the mean and 1 / sqrt(variance + eps) — ONNX LayerNormalization's optional Mean and
// InvStdDev outputs. The statistics are copies, outside autograd.
struct LayerNormStatistics {
  Tensor mean, inv_std;
};
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                  LayerNormStatistics& statistics);
// Batch norm over the last axis. training: batch statistics are used and the moving averages
// (moving = moving * momentum + batch * (1 - momentum)) updated in place; otherwise the moving
// statistics are used. gamma may be undefined (Keras scale=False).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& moving_mean,
                  Tensor& moving_variance, bool training, double momentum, double eps);
// Inverted dropout with a counter-based mask (same mask on every device for the same seed).
Tensor dropout(const Tensor& x, double rate, uint64_t seed, uint64_t offset = 0);

// ---- convolution and pooling (ops_conv.cpp) --------------------------------------------------------
// The padding model (explicit (before, after) pairs; Keras same/valid, ONNX SAME_LOWER and pads,
// PyTorch symmetric padding as ways to compute them), Conv2dOptions and Pool2dOptions, and how
// ONNX's Conv / MaxPool / AveragePool attributes map onto them: tensor/conv_geometry.h.
// A Padding (Same/Valid) converts to a Padding2d wherever one is taken.
// ONNX in short (NCHW -> NHWC; Conv weight [COUT, CIN/group, KH, KW] -> [KH, KW, CIN/group, COUT]):
//   pads [t, l, b, r]        -> padding = Padding2d::onnx(pads)
//   auto_pad SAME_UPPER      -> Padding2d::same();  SAME_LOWER -> Padding2d::same_lower();
//   auto_pad VALID           -> Padding2d::valid()
//   strides, dilations       -> stride_h/w, dilation_h/w (pooling: dilation for MaxPool only)
//   group                    -> Conv2dOptions::groups
//   ceil_mode, count_include_pad -> Pool2dOptions::ceil_mode, ::count_include_pad
//   kernel_shape (pooling)   -> pool_h, pool_w

// x [N, H, W, C], kernel [KH, KW, C / groups, COUT] -> [N, OH, OW, COUT]. 1x1 stride-1 convs are
// one GEMM; a grouped conv is one convolution per group.
Tensor conv2d(const Tensor& x, const Tensor& kernel, const Conv2dOptions& options);
Tensor conv2d(const Tensor& x, const Tensor& kernel, int stride_h, int stride_w,
              const Padding2d& padding);
// relu?(residual + conv2d(x, kernel) + bias), bias [COUT], residual (optional) shaped like the
// output: the inference form, which starts each slice of the output from residual + bias and
// applies the ReLU while the slice is in cache. With gradients it is the composed ops.
Tensor conv2d_bias_activation(const Tensor& x, const Tensor& kernel, const Tensor& bias,
                              const Conv2dOptions& options, bool relu,
                              const Tensor& residual = Tensor());
Tensor conv2d_bias_activation(const Tensor& x, const Tensor& kernel, const Tensor& bias,
                              int stride_h, int stride_w, const Padding2d& padding, bool relu,
                              const Tensor& residual = Tensor());
// A convolution kernel copied once into the CPU's packed GEMM layout (tensor/cpu/packed_gemm.h),
// for a frozen network run many times: the product then skips the per-call copy of the kernel
// that a general GEMM makes, and the bias, residual and ReLU are applied before each tile of the
// output is stored. A snapshot: pack again after changing the kernel. CPU only.
struct PackedConvKernel {
  Tensor packed;       // 1-D, in the packed layout
  Shape kernel_shape;  // the kernel's [KH, KW, C, COUT]
  bool defined() const { return packed.defined(); }
};
PackedConvKernel pack_conv_kernel(const Tensor& kernel);
// conv2d_bias_activation with a packed kernel: the same result, up to rounding. Inference only:
// no input may require gradients. Undilated and ungrouped.
Tensor conv2d_bias_activation(const Tensor& x, const PackedConvKernel& kernel, const Tensor& bias,
                              int stride_h, int stride_w, const Padding2d& padding, bool relu,
                              const Tensor& residual = Tensor());
// Pooling windows of pool_h x pool_w. Max pooling ignores padding (as -inf); average pooling
// divides by the real cells, or with options.count_include_pad by the padded window's cells.
Tensor max_pool2d(const Tensor& x, int pool_h, int pool_w, const Pool2dOptions& options);
Tensor avg_pool2d(const Tensor& x, int pool_h, int pool_w, const Pool2dOptions& options);
Tensor max_pool2d(const Tensor& x, int pool_h, int pool_w, int stride_h, int stride_w,
                  const Padding2d& padding);
Tensor avg_pool2d(const Tensor& x, int pool_h, int pool_w, int stride_h, int stride_w,
                  const Padding2d& padding);

// ---- recurrent (ops_gru.cpp) ------------------------------------------------------------------------
// Which of Keras's GRU formulations, and which direction (docs/layers.md has the equations).
struct GruOptions {
  // true (Keras's default, cuDNN's): c = tanh(x W_h + b0_h + r * (h R_h + b1_h)), bias [2, 3U]
  // (row 0 input, row 1 recurrent). false (the original GRU): c = tanh(x W_h + b_h + (r * h) R_h),
  // one bias [3U] on the input side.
  bool reset_after = true;
  // Run over the time steps last to first. As in Keras, the sequence comes back in PROCESSING
  // order: sequence[:, 0] is the state after reading x[:, T-1]; the final state is sequence[:, T-1].
  bool go_backwards = false;
};
// The whole Keras GRU (gates z, r, h) over a sequence as ONE op:
// x [B, T, I], h0 [B, U], kernel [I, 3U], recurrent_kernel [U, 3U], bias [2, 3U] or [3U]
// -> (sequence [B, T, U], final state [B, U]). Backward through time is hand-written.
std::pair<Tensor, Tensor> gru_sequence(const Tensor& x, const Tensor& h0, const Tensor& kernel,
                                       const Tensor& recurrent_kernel, const Tensor& bias,
                                       GruOptions options = {});

// ---- optimizer kernels exposed as in-place updates (no autograd) ------------------------------
void adam_update_(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr_t, double beta1,
                  double beta2, double eps);
void sgd_update_(Tensor& w, const Tensor& g, Tensor& velocity, double lr, double momentum,
                 bool nesterov);
// w += alpha * x, in place (no autograd).
void axpy_(Tensor& y, double alpha, const Tensor& x);

}  // namespace glimpse
