// Element-wise ops: broadcasting binary arithmetic, unary maps, where/masked_fill, and the
// broadcast helpers whose adjoint (sum_to_shape) every broadcasting backward needs.
#include <algorithm>
#include <cmath>

#include "tensor/op_helpers.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace glimpse {

using detail::check_float;
using detail::check_same_dtype_device;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op_name) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op_name, "shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

// Strides of `t` read as if it had `out_shape` (0 along broadcast axes).
void broadcast_strides(const Tensor& t, const Shape& out_shape, int64_t* strides) {
  const size_t rank = out_shape.size();
  const size_t lead = rank - t.shape().size();
  for (size_t i = 0; i < rank; ++i) {
    if (i < lead || t.shape()[i - lead] == 1) {
      strides[i] = 0;
    } else {
      strides[i] = t.strides()[i - lead];
    }
  }
}

// How the kernels read a and b (views included) as the broadcast output shape.
BroadcastLayout broadcast_layout(const Tensor& a, const Tensor& b, const Shape& out_shape) {
  BroadcastLayout layout;
  layout.rank = static_cast<int>(out_shape.size());
  for (int i = 0; i < layout.rank; ++i) layout.shape[i] = out_shape[i];
  broadcast_strides(a, out_shape, layout.a_strides);
  broadcast_strides(b, out_shape, layout.b_strides);
  return layout;
}

// The forward of every broadcasting binary op, without autograd.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  check_float(name, a, "left operand");
  check_float(name, b, "right operand");
  check_same_dtype_device(name, a, b);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  if (static_cast<int>(out_shape.size()) > kMaxRank) fail(name, "rank exceeds ", kMaxRank);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  const BroadcastLayout layout = broadcast_layout(a, b, out_shape);
  dispatch_float(name, a.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(a.device()).binary(op, a.data<T>(), b.data<T>(), out.data<T>(), layout);
  });
  return out;
}

Tensor unary_forward(UnaryOp op, const Tensor& x, double param) {
  const char* name = op_name(op);
  check_float(name, x, "input");
  Tensor xc = x.contiguous().detach();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(name, x.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(x.device()).unary(op, xc.data<T>(), out.data<T>(), x.numel(),
                                     static_cast<T>(param));
  });
  return out;
}

// The backward of a binary op from its listed derivatives (elementwise_ops.h), one kernel for
// both operands, each gradient then summed over the axes its operand was broadcast along.
std::vector<Tensor> binary_backward(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y,
                                    const Tensor& grad_y, bool need_a, bool need_b) {
  Tensor gy = grad_y.contiguous();
  const Shape& out_shape = y.shape();
  Tensor ga = need_a ? Tensor::empty(out_shape, y.dtype(), y.device()) : Tensor();
  Tensor gb = need_b ? Tensor::empty(out_shape, y.dtype(), y.device()) : Tensor();
  if (y.numel() > 0) {
    const BroadcastLayout layout = broadcast_layout(a, b, out_shape);
    dispatch_float(op_name(op), y.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels_for<T>(y.device())
          .binary_backward(op, a.data<T>(), b.data<T>(), y.data<T>(), gy.data<T>(),
                           need_a ? ga.data<T>() : nullptr, need_b ? gb.data<T>() : nullptr, layout);
    });
  }
  return {need_a ? sum_to_shape(ga, a.shape()) : Tensor(),
          need_b ? sum_to_shape(gb, b.shape()) : Tensor()};
}

// A binary op whose gradients need the operands (mul, div, pow): binary_backward's kernel.
Tensor binary_with_grad(BinaryOp op, const Tensor& a, const Tensor& b) {
  GLIMPSE_OP_SCOPE(op_name(op), binary_with_grad, op, a, b);
  Tensor out = binary_forward(op, a, b);
  if (any_requires_grad({a, b})) {
    Tensor sa = a.detach(), sb = b.detach(), sy = out.detach();
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    record_node(op_name(op), {a, b}, out, [=](const std::vector<Tensor>& g) {
      return binary_backward(op, sa, sb, sy, g[0], need_a, need_b);
    });
  }
  return out;
}

}  // namespace

// Unary op with the generic backward gx = gy * f'(x).
Tensor unary(UnaryOp op, const Tensor& x, double param) {
  GLIMPSE_OP_SCOPE(op_name(op), unary, op, x, param);
  Tensor out = unary_forward(op, x, param);
  if (any_requires_grad({x})) {
    Tensor saved_x = x.contiguous().detach();
    Tensor saved_y = out.detach();
    const char* name = op_name(op);
    record_node(name, {x}, out, [=](const std::vector<Tensor>& g) {
      Tensor gy = g[0].contiguous();
      Tensor gx = Tensor::empty(saved_x.shape(), saved_x.dtype(), saved_x.device());
      dispatch_float(name, saved_x.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels_for<T>(saved_x.device())
            .unary_backward(op, saved_x.data<T>(), saved_y.data<T>(), gy.data<T>(), gx.data<T>(),
                            saved_x.numel(), static_cast<T>(param));
      });
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  GLIMPSE_OP_SCOPE("sum_to_shape", sum_to_shape, grad, shape);
  if (grad.shape() == shape) return grad;
  const size_t rank = grad.shape().size();
  if (shape.size() > rank) fail("sum_to_shape", "target ", shape_str(shape), " has more axes than ",
                                shape_str(grad.shape()));
  const size_t lead = rank - shape.size();
  std::vector<int> axes;
  for (size_t i = 0; i < rank; ++i)
    if (i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1)) axes.push_back(static_cast<int>(i));
  Tensor reduced = axes.empty() ? grad : sum(grad, axes, /*keepdims=*/true);
  return reshape(reduced, shape);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  GLIMPSE_OP_SCOPE("broadcast_to", broadcast_to, x, shape);
  if (x.shape() == shape) return x;
  Shape check = broadcast_shapes(x.shape(), shape, "broadcast_to");
  if (check != shape)
    fail("broadcast_to", "cannot broadcast ", shape_str(x.shape()), " to ", shape_str(shape));
  // A zero-stride view materialised by contiguous(): one strided copy, no arithmetic.
  auto view = std::make_shared<TensorImpl>(*x.detach().impl());
  view->shape = shape;
  view->strides.assign(shape.size(), 0);
  broadcast_strides(x, shape, view->strides.data());
  Tensor out = Tensor(view).contiguous();
  if (any_requires_grad({x})) {
    Shape in_shape = x.shape();
    record_node("broadcast_to", {x}, out, [in_shape](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to_shape(g[0], in_shape)};
    });
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) {
  GLIMPSE_OP_SCOPE("add", add, a, b);
  Tensor out = binary_forward(BinaryOp::Add, a, b);
  if (any_requires_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    record_node("add", {a, b}, out, [sa, sb](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to_shape(g[0], sa), sum_to_shape(g[0], sb)};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  GLIMPSE_OP_SCOPE("sub", sub, a, b);
  Tensor out = binary_forward(BinaryOp::Sub, a, b);
  if (any_requires_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    bool need_b = b.requires_grad();
    record_node("sub", {a, b}, out, [sa, sb, need_b](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to_shape(g[0], sa),
                                 need_b ? sum_to_shape(neg(g[0]), sb) : Tensor()};
    });
  }
  return out;
}

// Add's and sub's gradients are gy and -gy whatever the operands: no kernel needed. Mul, div and
// pow take their derivatives from elementwise_ops.h through one binary_backward kernel (pow's
// special cases at a == 0 and b == 0 need comparisons that composed ops would not have).
Tensor mul(const Tensor& a, const Tensor& b) { return binary_with_grad(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_with_grad(BinaryOp::Div, a, b); }
Tensor pow(const Tensor& base, const Tensor& exponent) {
  return binary_with_grad(BinaryOp::Pow, base, exponent);
}

Tensor add_scalar(const Tensor& x, double s) {
  GLIMPSE_OP_SCOPE("add_scalar", add_scalar, x, s);
  Tensor out = unary_forward(UnaryOp::AddScalar, x, s);
  if (any_requires_grad({x}))
    record_node("add_scalar", {x}, out,
                [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  return out;
}

Tensor mul_scalar(const Tensor& x, double s) {
  GLIMPSE_OP_SCOPE("mul_scalar", mul_scalar, x, s);
  Tensor out = unary_forward(UnaryOp::MulScalar, x, s);
  if (any_requires_grad({x}))
    record_node("mul_scalar", {x}, out, [s](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{mul_scalar(g[0], s)};
    });
  return out;
}

Tensor pow_scalar(const Tensor& x, double p) { return unary(UnaryOp::PowScalar, x, p); }
Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, x); }
Tensor square(const Tensor& x) { return unary(UnaryOp::Square, x); }
Tensor gelu(const Tensor& x) { return unary(UnaryOp::Gelu, x); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  GLIMPSE_OP_SCOPE("where", where, cond, a, b);
  check_float("where", cond, "condition");
  check_float("where", a, "first value");
  check_float("where", b, "second value");
  check_same_dtype_device("where", cond, a);
  check_same_dtype_device("where", a, b);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(),
                                 "where");
  Tensor c = broadcast_to(cond.detach(), shape);
  Tensor av = broadcast_to(a.detach(), shape);
  Tensor bv = broadcast_to(b.detach(), shape);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  dispatch_float("where", a.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(a.device()).where(c.data<T>(), av.data<T>(), bv.data<T>(), out.data<T>(),
                                     out.numel());
  });
  if (any_requires_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    record_node("where", {a, b}, out, [c, sa, sb](const std::vector<Tensor>& g) {
      Tensor zero = Tensor::zeros({}, g[0].dtype(), g[0].device());
      return std::vector<Tensor>{sum_to_shape(where(c, g[0], zero), sa),
                                 sum_to_shape(where(c, zero, g[0]), sb)};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  GLIMPSE_OP_SCOPE("masked_fill", masked_fill, x, mask, value);
  check_float("masked_fill", x, "input");
  return where(mask, Tensor::full({}, value, x.dtype(), x.device()), x);
}

// ---- in-place updates used by optimizers (no autograd) ---------------------------------------------

namespace {
void check_update_operand(const char* op, const Tensor& w, const Tensor& other, const char* what) {
  check_float(op, other, what);
  check_same_dtype_device(op, w, other);
  if (other.shape() != w.shape())
    fail(op, what, " shape ", shape_str(other.shape()), " does not match the parameter's ",
         shape_str(w.shape()));
  if (!other.is_contiguous()) fail(op, what, " must be contiguous");
}
}  // namespace

void axpy_(Tensor& y, double alpha, const Tensor& x) {
  GLIMPSE_OP_SCOPE("axpy_", axpy_, y, alpha, x);
  check_float("axpy_", y, "destination");
  check_update_operand("axpy_", y, x, "source");
  if (!y.is_contiguous()) fail("axpy_", "destination must be contiguous");
  dispatch_float("axpy_", y.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(y.device()).axpy(y.numel(), static_cast<T>(alpha), x.data<T>(), y.data<T>());
  });
}

void adam_update_(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr_t, double beta1,
                  double beta2, double eps) {
  GLIMPSE_OP_SCOPE("adam_update_", adam_update_, w, g, m, v, lr_t, beta1, beta2, eps);
  check_float("adam_update_", w, "parameter");
  if (!w.is_contiguous()) fail("adam_update_", "parameter must be contiguous");
  Tensor gc = g.contiguous();
  check_update_operand("adam_update_", w, gc, "gradient");
  check_update_operand("adam_update_", w, m, "first moment");
  check_update_operand("adam_update_", w, v, "second moment");
  dispatch_float("adam_update_", w.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(w.device())
        .adam_update(w.data<T>(), gc.data<T>(), m.data<T>(), v.data<T>(), w.numel(),
                     static_cast<T>(lr_t), static_cast<T>(beta1), static_cast<T>(beta2),
                     static_cast<T>(eps));
  });
}

void sgd_update_(Tensor& w, const Tensor& g, Tensor& velocity, double lr, double momentum,
                 bool nesterov) {
  GLIMPSE_OP_SCOPE("sgd_update_", sgd_update_, w, g, velocity, lr, momentum, nesterov);
  check_float("sgd_update_", w, "parameter");
  if (!w.is_contiguous()) fail("sgd_update_", "parameter must be contiguous");
  Tensor gc = g.contiguous();
  check_update_operand("sgd_update_", w, gc, "gradient");
  check_update_operand("sgd_update_", w, velocity, "velocity");
  dispatch_float("sgd_update_", w.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(w.device())
        .sgd_update(w.data<T>(), gc.data<T>(), velocity.data<T>(), w.numel(), static_cast<T>(lr),
                    static_cast<T>(momentum), nesterov);
  });
}

}  // namespace glimpse
