// Convolution (im2col + GEMM, NHWC, Keras kernel layout) and 2D pooling, TF padding semantics.
#include "tensor/op_helpers.h"
#include "tensor/ops.h"

namespace glimpse {

using detail::check_float;
using detail::check_same_dtype_device;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;

const char* padding_name(Padding padding) { return padding == Padding::Same ? "same" : "valid"; }

PaddingPlan plan_padding(int64_t in, int64_t kernel, int64_t stride, Padding padding) {
  if (padding == Padding::Valid) {
    // out = floor((in - k) / s) + 1; trailing pixels that do not fit are dropped.
    if (in < kernel) return {0, 0};
    return {(in - kernel) / stride + 1, 0};
  }
  // SAME: out = ceil(in / s); the odd padding pixel goes after (bottom/right), as TF does.
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>(0, (out - 1) * stride + kernel - in);
  return {out, total / 2};
}

namespace {

Conv2dGeometry make_geometry(const char* op, const Tensor& x, int64_t kh, int64_t kw, int sh,
                             int sw, Padding padding) {
  check_float(op, x, "input");
  if (x.rank() != 4) fail(op, "input must be NHWC (rank 4), got shape ", shape_str(x.shape()));
  if (sh <= 0 || sw <= 0) fail(op, "strides must be positive, got ", sh, "x", sw);
  if (kh <= 0 || kw <= 0) fail(op, "window must be positive, got ", kh, "x", kw);
  Conv2dGeometry g{};
  g.N = x.shape()[0];
  g.H = x.shape()[1];
  g.W = x.shape()[2];
  g.C = x.shape()[3];
  g.KH = kh;
  g.KW = kw;
  g.SH = sh;
  g.SW = sw;
  PaddingPlan ph = plan_padding(g.H, kh, sh, padding);
  PaddingPlan pw = plan_padding(g.W, kw, sw, padding);
  g.OH = ph.out;
  g.OW = pw.out;
  g.pad_top = ph.pad_before;
  g.pad_left = pw.pad_before;
  if (g.OH <= 0 || g.OW <= 0)
    fail(op, "a ", kh, "x", kw, " window with ", padding_name(padding),
         " padding does not fit input ", shape_str(x.shape()));
  return g;
}

bool is_pointwise(const Conv2dGeometry& g) {
  return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1;
}

// cols [N*OH*OW, KH*KW*C] for x; a pointwise conv needs none (x itself is the matrix).
Tensor im2col_matrix(const Tensor& x, const Conv2dGeometry& g) {
  Tensor cols = Tensor::empty({g.N * g.OH * g.OW, g.KH * g.KW * g.C}, x.dtype(), x.device());
  dispatch_float("conv2d", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(x.device()).im2col(x.data<T>(), cols.data<T>(), g);
  });
  return cols;
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& kernel, int sh, int sw, Padding padding) {
  const char* name = "conv2d";
  check_float(name, kernel, "kernel");
  if (kernel.rank() != 4)
    fail(name, "kernel must be (kh, kw, cin, cout), got shape ", shape_str(kernel.shape()));
  Conv2dGeometry g = make_geometry(name, x_in, kernel.shape()[0], kernel.shape()[1], sh, sw, padding);
  check_same_dtype_device(name, x_in, kernel);
  if (kernel.shape()[2] != g.C)
    fail(name, "kernel ", shape_str(kernel.shape()), " expects ", kernel.shape()[2],
         " input channels but the input ", shape_str(x_in.shape()), " has ", g.C);
  const int64_t COUT = kernel.shape()[3];
  const int64_t rows = g.N * g.OH * g.OW, depth = g.KH * g.KW * g.C;
  Tensor x = x_in.contiguous().detach();
  Tensor w = kernel.contiguous().detach();
  Tensor out = Tensor::empty({g.N, g.OH, g.OW, COUT}, x.dtype(), x.device());
  if (out.numel() > 0) {
    Tensor cols = is_pointwise(g) ? x : im2col_matrix(x, g);
    dispatch_float(name, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels_for<T>(x.device()).gemm(false, false, rows, COUT, depth, T(1), cols.data<T>(), depth,
                                      w.data<T>(), COUT, T(0), out.data<T>(), COUT);
    });
  }
  if (any_requires_grad({x_in, kernel})) {
    bool need_x = x_in.requires_grad(), need_w = kernel.requires_grad();
    record_node(name, {x_in, kernel}, out, [=](const std::vector<Tensor>& grads) {
      Tensor gy = grads[0].contiguous();
      Tensor gx, gw;
      dispatch_float(name, x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const Kernels<T>& k = kernels_for<T>(x.device());
        if (need_w) {
          // dW[depth, COUT] = cols^T gy; the columns are recomputed rather than kept alive.
          Tensor cols = is_pointwise(g) ? x : im2col_matrix(x, g);
          gw = Tensor::empty(w.shape(), w.dtype(), w.device());
          k.gemm(true, false, depth, COUT, rows, T(1), cols.data<T>(), depth, gy.data<T>(), COUT,
                 T(0), gw.data<T>(), COUT);
        }
        if (need_x) {
          // dcols = gy W^T, then col2im scatters each window back onto the image.
          if (is_pointwise(g)) {
            gx = Tensor::empty(x.shape(), x.dtype(), x.device());
            k.gemm(false, true, rows, depth, COUT, T(1), gy.data<T>(), COUT, w.data<T>(), COUT,
                   T(0), gx.data<T>(), depth);
          } else {
            Tensor dcols = Tensor::empty({rows, depth}, x.dtype(), x.device());
            k.gemm(false, true, rows, depth, COUT, T(1), gy.data<T>(), COUT, w.data<T>(), COUT,
                   T(0), dcols.data<T>(), depth);
            gx = Tensor::zeros(x.shape(), x.dtype(), x.device());
            k.col2im(dcols.data<T>(), gx.data<T>(), g);
          }
        }
      });
      return std::vector<Tensor>{gx, gw};
    });
  }
  return out;
}

Tensor max_pool2d(const Tensor& x_in, int ph, int pw, int sh, int sw, Padding padding) {
  const char* name = "max_pool2d";
  Conv2dGeometry g = make_geometry(name, x_in, ph, pw, sh, sw, padding);
  Tensor x = x_in.contiguous().detach();
  Tensor out = Tensor::empty({g.N, g.OH, g.OW, g.C}, x.dtype(), x.device());
  Tensor arg = Tensor::empty({g.N, g.OH, g.OW, g.C}, DType::I32, x.device());
  dispatch_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(x.device()).max_pool(x.data<T>(), out.data<T>(), arg.data<int32_t>(), g);
  });
  if (any_requires_grad({x_in})) {
    record_node(name, {x_in}, out, [=](const std::vector<Tensor>& grads) {
      Tensor gy = grads[0].contiguous();
      Tensor gx = Tensor::empty({g.N, g.H, g.W, g.C}, gy.dtype(), gy.device());
      dispatch_float(name, gy.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels_for<T>(gy.device()).max_pool_backward(gy.data<T>(), arg.data<int32_t>(),
                                                      gx.data<T>(), g);
      });
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor avg_pool2d(const Tensor& x_in, int ph, int pw, int sh, int sw, Padding padding) {
  const char* name = "avg_pool2d";
  Conv2dGeometry g = make_geometry(name, x_in, ph, pw, sh, sw, padding);
  Tensor x = x_in.contiguous().detach();
  Tensor out = Tensor::empty({g.N, g.OH, g.OW, g.C}, x.dtype(), x.device());
  dispatch_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(x.device()).avg_pool(x.data<T>(), out.data<T>(), g);
  });
  if (any_requires_grad({x_in})) {
    record_node(name, {x_in}, out, [=](const std::vector<Tensor>& grads) {
      Tensor gy = grads[0].contiguous();
      Tensor gx = Tensor::empty({g.N, g.H, g.W, g.C}, gy.dtype(), gy.device());
      dispatch_float(name, gy.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels_for<T>(gy.device()).avg_pool_backward(gy.data<T>(), gx.data<T>(), g);
      });
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace glimpse
