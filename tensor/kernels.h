// The kernel interface: the one contract between the ops layer (tensor/ops_*.cpp) and a backend.
//
// Every backend (CPU in tensor/cpu/table.cpp, CUDA in cuda/) fills the same tables of plain
// function pointers. Kernels see raw pointers to contiguous row-major memory on their own device,
// plus sizes; they never allocate tensors, never check shapes (the ops layer did that) and never
// record autograd nodes. That keeps each kernel testable and benchmarkable alone, and lets the test
// suite compare the two backends kernel by kernel.
//
// Conventions
// - T is float (both backends) or double (CPU only: the finite-difference gradient tests).
// - Sizes are int64_t. Index tensors (token ids, argmax) are int32_t.
// - "Written" outputs are overwritten; nothing accumulates unless the comment says "accumulates".
// - All GEMMs are row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/elementwise_ops.h"

namespace glimpse {

enum class Device : uint8_t { CPU = 0, CUDA = 1 };
enum class DType : uint8_t { F32 = 0, I32 = 1, F64 = 2 };

constexpr int kMaxRank = 8;

// UnaryOp and BinaryOp: the element-wise ops, listed with their formulas in elementwise_ops.h.

// Shape of the output and, for each input, its element strides in that shape (0 on broadcast axes).
struct BroadcastLayout {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t a_strides[kMaxRank] = {};
  int64_t b_strides[kMaxRank] = {};
};

// A strided view to gather into a contiguous buffer (offset already applied to the pointer).
struct StridedLayout {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};
};

// NHWC convolution / pooling geometry, padding already resolved (tensor/conv_geometry.h):
// pad_top/pad_left are the "before" amounts; the "after" amounts are implied by OH/OW. Window
// (oh, ow) covers input rows oh * SH - pad_top + kh * DH for kh in [0, KH), columns likewise.
struct Conv2dGeometry {
  int64_t N, H, W, C;      // input
  int64_t KH, KW;          // window
  int64_t SH, SW;          // strides
  int64_t pad_top, pad_left;
  int64_t OH, OW;          // output spatial size
  // Defaulted, so that the twelve values above still describe an undilated convolution.
  int64_t DH = 1, DW = 1;  // dilation (convolution and max pooling)
  // Average pooling only: with count_include_pad the divisor counts the window's cells inside
  // [-pad_top, H + pad_bottom) x [-pad_left, W + pad_right); otherwise only the real cells.
  int64_t pad_bottom = 0, pad_right = 0;
  bool count_include_pad = false;
};

// Memory and copies: one per device, not templated.
struct DeviceApi {
  void* (*alloc)(size_t bytes);                 // never returns null: throws on failure
  void (*free)(void* ptr);
  void (*copy_to_host)(void* host_dst, const void* dev_src, size_t bytes);
  void (*copy_from_host)(void* dev_dst, const void* host_src, size_t bytes);
  void (*copy_on_device)(void* dst, const void* src, size_t bytes);
  void (*synchronize)();
  // Gathers a strided view of elements of `elem_size` bytes (4 or 8) into contiguous `y`.
  void (*copy_strided)(const void* x, size_t elem_size, const StridedLayout& layout, void* y);
  void (*fill_i32)(int32_t* y, int64_t n, int32_t value);
};

template <class T>
struct Kernels {
  void (*fill)(T* y, int64_t n, T value);
  void (*cast_from_i32)(const int32_t* x, T* y, int64_t n);
  void (*cast_to_i32)(const T* x, int32_t* y, int64_t n);    // truncation toward zero
  void (*axpy)(int64_t n, T alpha, const T* x, T* y);         // y += alpha * x (accumulates)
  // dst[r * dst_ld + c] = src[r * src_ld + c] for r < rows, c < cols (concat, split, slice).
  void (*copy_2d)(const T* src, int64_t src_ld, T* dst, int64_t dst_ld, int64_t rows, int64_t cols);

  void (*unary)(UnaryOp op, const T* x, T* y, int64_t n, T param);
  // gx = gy * f'(x); y = f(x) is passed because some derivatives are cheapest from it.
  void (*unary_backward)(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T param);
  void (*binary)(BinaryOp op, const T* a, const T* b, T* y, const BroadcastLayout& layout);
  // Gradients of a binary op in the OUTPUT's shape (the op sums broadcast axes after): ga = gy *
  // d op/da, gb = gy * d op/db, each op's formulas as elementwise_ops.h lists them (pow's special
  // cases included). a and b are read through `layout` as in binary; y, gy, ga and gb are
  // contiguous. ga or gb may be null (skipped).
  void (*binary_backward)(BinaryOp op, const T* a, const T* b, const T* y, const T* gy, T* ga,
                          T* gb, const BroadcastLayout& layout);
  // y = cond != 0 ? a : b, all of n elements.
  void (*where)(const T* cond, const T* a, const T* b, T* y, int64_t n);

  // Reductions over the middle axis of x viewed as [outer, R, inner] -> y[outer, inner].
  void (*reduce_sum)(const T* x, T* y, int64_t outer, int64_t R, int64_t inner);
  // Product over R (1 when R == 0).
  void (*reduce_prod)(const T* x, T* y, int64_t outer, int64_t R, int64_t inner);
  // gx[o, r, i] = gy[o, i] * (product of x[o, k, i] over k != r), from exclusive prefix and suffix
  // products: no division, so zeros in x give the right (finite) gradient.
  void (*reduce_prod_backward)(const T* x, const T* gy, T* gx, int64_t outer, int64_t R,
                               int64_t inner);
  // Max also writes the winning index along R (first one on ties) for the backward.
  void (*reduce_max)(const T* x, T* y, int32_t* argmax, int64_t outer, int64_t R, int64_t inner);
  // gx[o, argmax[o,i], i] = gy[o, i]; every other element of gx written 0.
  void (*reduce_max_backward)(const T* gy, const int32_t* argmax, T* gx, int64_t outer, int64_t R,
                              int64_t inner);

  void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
               int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
  void (*gemm_strided_batched)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                               const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                               int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
                               int64_t batch);

  // Softmax (or log-softmax when `log`) over the last axis of x[rows, cols].
  void (*softmax)(const T* x, T* y, int64_t rows, int64_t cols, bool log);
  void (*softmax_backward)(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log);

  // Fused log-softmax + NLL per row. Rows whose target == ignore_index get loss 0 and valid 0,
  // others valid 1. Targets outside [0, cols) are the op's job to reject before the call.
  void (*cross_entropy)(const T* logits, const int32_t* targets, T* loss, T* valid, int64_t rows,
                        int64_t cols, int32_t ignore_index);
  // glogits = gloss[row] * (softmax(logits) - onehot(target)); 0 on ignored rows.
  void (*cross_entropy_backward)(const T* logits, const int32_t* targets, const T* gloss,
                                 T* glogits, int64_t rows, int64_t cols, int32_t ignore_index);

  // Layer norm over the last axis; mean and rstd = 1/sqrt(var + eps) are saved per row.
  void (*layer_norm)(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                     int64_t rows, int64_t cols, T eps);
  // Writes gx, ggamma, gbeta (ggamma/gbeta summed over rows).
  void (*layer_norm_backward)(const T* x, const T* gamma, const T* mean, const T* rstd,
                              const T* gy, T* gx, T* ggamma, T* gbeta, int64_t rows, int64_t cols);

  // Batch norm over x[N, C] (N = batch * H * W). Biased variance.
  void (*batch_norm_stats)(const T* x, T* mean, T* var, int64_t N, int64_t C);
  // y = (x - mean) / sqrt(var + eps) * gamma + beta; gamma may be null (= 1).
  void (*batch_norm_forward)(const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                             T* y, int64_t N, int64_t C, T eps);
  // training: mean/var are the batch statistics and their dependence on x is differentiated.
  // ggamma may be null (no gamma). Writes gx, ggamma, gbeta.
  void (*batch_norm_backward)(const T* x, const T* mean, const T* var, const T* gamma, const T* gy,
                              T* gx, T* ggamma, T* gbeta, int64_t N, int64_t C, T eps,
                              bool training);

  // Row gather (embeddings, ONNX Gather): out[i, :] = table[idx[i], :] for a table of n_rows
  // rows, a negative index -k meaning row n_rows - k; backward accumulates rows into gtable.
  // The op checks the range [-n_rows, n_rows) before the call.
  void (*gather_rows)(const T* table, int64_t n_rows, const int32_t* idx, T* out, int64_t n_idx,
                      int64_t row_size);
  void (*scatter_add_rows)(const T* gout, const int32_t* idx, T* gtable, int64_t n_rows,
                           int64_t n_idx, int64_t row_size);

  // im2col for NHWC: cols[(n, oh, ow), (kh, kw, c)], zero where the window hits padding.
  void (*im2col)(const T* x, T* cols, const Conv2dGeometry& g);
  // col2im accumulates into gx, which the caller zeroed.
  void (*col2im)(const T* cols, T* gx, const Conv2dGeometry& g);

  // Pooling (output channels = C). Max: padded cells are -inf; argmax holds the flat input index
  // (within the image: (h * W + w) * C + c), or is null when no backward will need it (inference).
  // Average: divides by the count of real cells, or with g.count_include_pad by the window's cells
  // inside the explicitly padded input. Average pooling takes no dilation (DH = DW = 1).
  void (*max_pool)(const T* x, T* y, int32_t* argmax, const Conv2dGeometry& g);
  void (*max_pool_backward)(const T* gy, const int32_t* argmax, T* gx, const Conv2dGeometry& g);
  void (*avg_pool)(const T* x, T* y, const Conv2dGeometry& g);
  void (*avg_pool_backward)(const T* gy, T* gx, const Conv2dGeometry& g);

  // Dropout keep-mask scaled by 1/(1-p), from a counter-based hash of (seed, offset + i): the CPU
  // and CUDA backends produce the same mask for the same seed.
  void (*dropout_mask)(T* mask, int64_t n, T p, uint64_t seed, uint64_t offset);

  // One GRU step (Keras reset_after, gate order z, r, h), B rows of U units.
  // xp = x W + b_in   [B, 3U] (this step's slice), hp = h_prev R + b_rec [B, 3U].
  // Writes h_new [B, U] and gates [B, 3U] = (z, r, c) for the backward.
  void (*gru_step)(const T* xp, const T* hp, const T* h_prev, T* h_new, T* gates, int64_t B,
                   int64_t U);
  // From gh = dL/dh_new: writes dxp [B, 3U], dhp [B, 3U] and dh_prev [B, U] = gh * z (the direct
  // path only; the caller adds dhp R^T).
  void (*gru_step_backward)(const T* gh, const T* gates, const T* hp, const T* h_prev, T* dxp,
                            T* dhp, T* dh_prev, int64_t B, int64_t U);

  // The same step with the reset gate applied BEFORE the recurrent matmul (Keras reset_after=False,
  // ONNX linear_before_reset=0): c = tanh(xp_h + (r * h_prev) R_h). The matmul needs r, so a step
  // is two kernels around it; hp [B, 3U] holds h_prev R_z, h_prev R_r and, once the caller has
  // multiplied, (r * h_prev) R_h. There is no recurrent bias (xp carries the single bias).
  // 1) Writes gates' z and r blocks (sigmoid(xp + hp)) and rh [B, U] = r * h_prev.
  void (*gru_gates_reset_before)(const T* xp, const T* hp, const T* h_prev, T* gates, T* rh,
                                 int64_t B, int64_t U);
  // 2) Writes gates' c block = tanh(xp_h + hp_h) and h_new = z * h_prev + (1 - z) * c.
  void (*gru_output_reset_before)(const T* xp, const T* hp, const T* h_prev, T* gates, T* h_new,
                                  int64_t B, int64_t U);
  // Backward of 2) from gh = dL/dh_new: writes the z and h blocks of dpre [B, 3U] (gradients of
  // the pre-activations, for the input and the recurrent side alike) and dh_prev = gh * z.
  void (*gru_output_reset_before_backward)(const T* gh, const T* gates, const T* h_prev, T* dpre,
                                           T* dh_prev, int64_t B, int64_t U);
  // Backward of 1) from drh = dL/d(r * h_prev) (the caller's dpre_h R_h^T): writes dpre's r block
  // and ACCUMULATES drh * r into dh_prev.
  void (*gru_gates_reset_before_backward)(const T* drh, const T* gates, const T* h_prev, T* dpre,
                                          T* dh_prev, int64_t B, int64_t U);

  // Row-wise argmax and top-k (values descending, ties by lower index).
  void (*argmax_rows)(const T* x, int32_t* idx, int64_t rows, int64_t cols);
  void (*topk_rows)(const T* x, T* values, int32_t* idx, int64_t rows, int64_t cols, int64_t k);

  // Keras Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr_t m / (sqrt(v) + eps).
  void (*adam_update)(T* w, const T* g, T* m, T* v, int64_t n, T lr_t, T b1, T b2, T eps);
  // The same update over `count` tensors in one call (Adam fused over all parameters): tensor k
  // has n[k] elements (0 allowed) at w[k], g[k], m[k], v[k]. The five arrays are host memory
  // holding this device's pointers; every element gets exactly adam_update's arithmetic.
  void (*adam_update_multi)(T* const* w, const T* const* g, T* const* m, T* const* v,
                            const int64_t* n, int64_t count, T lr_t, T b1, T b2, T eps);
  // SGD with momentum (Keras): vel = momentum vel - lr g; w += vel (nesterov: w += momentum vel - lr g).
  void (*sgd_update)(T* w, const T* g, T* vel, int64_t n, T lr, T momentum, bool nesterov);
};

// Tables for each device. The CUDA ones throw a clear error when the program has no CUDA backend
// or the machine no GPU.
const DeviceApi& device_api(Device device);
const Kernels<float>& kernels_f32(Device device);
const Kernels<double>& kernels_f64(Device device);  // CPU only
bool cuda_available();                              // a CUDA backend is linked in and a GPU is present

// How a backend plugs in. tensor/ knows the CPU backend (it lives here); any other backend
// registers its tables from a static initializer in its own folder (cuda/table.cpp), so this layer
// never includes what sits above it. The CMake target glimpse::glimpse links such a backend as a
// whole archive, so that the linker keeps the registering object although nothing calls it.
struct Backend {
  const char* name = nullptr;
  const DeviceApi& (*device_api)() = nullptr;
  const Kernels<float>& (*kernels_f32)() = nullptr;
  // Asked once, on first use: false when the runtime sees no device. Must not throw.
  bool (*device_present)() = nullptr;
};
// Returns true, so that a backend can write `static const bool registered = register_backend(...)`.
// Registering the same device twice is a programming error and aborts with a message.
bool register_backend(Device device, const Backend& backend);
// True when a backend for `device` is linked into this program (a GPU need not be present).
bool backend_linked(Device device);

}  // namespace glimpse
