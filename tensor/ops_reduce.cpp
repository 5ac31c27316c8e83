// Reductions (sum, mean, prod, max), softmax / log-softmax over any axis, argmax and top-k.
//
// Every reduction views its contiguous input as [outer, R, inner] around the reduced axis, so one
// kernel serves every axis; several axes are reduced one after the other.
#include <algorithm>
#include <numeric>

#include "tensor/op_helpers.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace glimpse {

using detail::check_float;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;
using detail::normalize_axis;

namespace {

struct AxisSplit {
  int64_t outer = 1, R = 1, inner = 1;
};

AxisSplit split_at(const Shape& shape, int axis) {
  AxisSplit s;
  for (int i = 0; i < axis; ++i) s.outer *= shape[i];
  s.R = shape[axis];
  for (size_t i = axis + 1; i < shape.size(); ++i) s.inner *= shape[i];
  return s;
}

// Sums one axis of a contiguous tensor, keeping it as size 1. No autograd.
Tensor sum_one_axis(const Tensor& x, int axis) {
  AxisSplit s = split_at(x.shape(), axis);
  Shape out_shape = x.shape();
  out_shape[axis] = 1;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  dispatch_float("sum", x.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(x.device()).reduce_sum(x.data<T>(), out.data<T>(), s.outer, s.R, s.inner);
  });
  return out;
}

std::vector<int> normalize_axes(const char* op, std::vector<int> axes, int rank) {
  if (axes.empty()) {
    axes.resize(rank);
    std::iota(axes.begin(), axes.end(), 0);
  }
  for (int& a : axes) a = normalize_axis(op, a, rank);
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
    fail(op, "an axis is listed twice");
  return axes;
}

Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdims) {
  Shape out;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) out.push_back(shape[i]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

// Product over one axis, kept as size 1, recorded with its own backward. prod() chains these over
// its axes, so the chain rule multiplies in the other axes' products and every step stays free of
// division (a zero anywhere gives the exact gradient, not 0/0).
Tensor prod_one_axis(const Tensor& x, int axis) {
  Tensor xc = x.contiguous();
  AxisSplit s = split_at(xc.shape(), axis);
  Shape out_shape = xc.shape();
  out_shape[axis] = 1;
  Tensor out = Tensor::empty(out_shape, xc.dtype(), xc.device());
  dispatch_float("prod", xc.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(xc.device()).reduce_prod(xc.data<T>(), out.data<T>(), s.outer, s.R, s.inner);
  });
  if (any_requires_grad({xc})) {
    Tensor saved = xc.detach();
    record_node("prod", {xc}, out, [saved, s](const std::vector<Tensor>& g) {
      Tensor gy = g[0].contiguous();
      Tensor gx = Tensor::empty(saved.shape(), saved.dtype(), saved.device());
      dispatch_float("prod", saved.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels_for<T>(saved.device())
            .reduce_prod_backward(saved.data<T>(), gy.data<T>(), gx.data<T>(), s.outer, s.R,
                                  s.inner);
      });
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int> axes, bool keepdims) {
  GLIMPSE_OP_SCOPE("sum", sum, x, axes, keepdims);
  check_float("sum", x, "input");
  axes = normalize_axes("sum", axes, x.rank());
  Tensor acc = x.contiguous().detach();
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) acc = sum_one_axis(acc, *it);
  Shape kept = reduced_shape(x.shape(), axes, true);
  Shape out_shape = reduced_shape(x.shape(), axes, keepdims);
  Tensor out = reshape(acc, out_shape);
  if (any_requires_grad({x})) {
    Shape in_shape = x.shape();
    record_node("sum", {x}, out, [in_shape, kept](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{broadcast_to(reshape(g[0], kept), in_shape)};
    });
  }
  return out;
}

Tensor mean(const Tensor& x, std::vector<int> axes, bool keepdims) {
  GLIMPSE_OP_SCOPE("mean", mean, x, axes, keepdims);
  check_float("mean", x, "input");
  axes = normalize_axes("mean", axes, x.rank());
  int64_t count = 1;
  for (int a : axes) count *= x.shape()[a];
  if (count == 0) fail("mean", "reducing over an empty axis of shape ", shape_str(x.shape()));
  return mul_scalar(sum(x, axes, keepdims), 1.0 / static_cast<double>(count));
}

Tensor prod(const Tensor& x, std::vector<int> axes, bool keepdims) {
  GLIMPSE_OP_SCOPE("prod", prod, x, axes, keepdims);
  check_float("prod", x, "input");
  axes = normalize_axes("prod", axes, x.rank());
  Tensor acc = x;
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) acc = prod_one_axis(acc, *it);
  return reshape(acc, reduced_shape(x.shape(), axes, keepdims));
}

Tensor max(const Tensor& x, int axis, bool keepdims) {
  GLIMPSE_OP_SCOPE("max", max, x, axis, keepdims);
  check_float("max", x, "input");
  axis = normalize_axis("max", axis, x.rank());
  if (x.shape()[axis] == 0) fail("max", "axis ", axis, " of shape ", shape_str(x.shape()), " is empty");
  Tensor xc = x.contiguous().detach();
  AxisSplit s = split_at(x.shape(), axis);
  Shape kept = x.shape();
  kept[axis] = 1;
  Tensor out = Tensor::empty(kept, x.dtype(), x.device());
  Tensor arg = Tensor::empty(kept, DType::I32, x.device());
  dispatch_float("max", x.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(x.device())
        .reduce_max(xc.data<T>(), out.data<T>(), arg.data<int32_t>(), s.outer, s.R, s.inner);
  });
  Tensor result = keepdims ? out : reshape(out, reduced_shape(x.shape(), {axis}, false));
  if (any_requires_grad({x})) {
    Shape in_shape = x.shape();
    record_node("max", {x}, result, [=](const std::vector<Tensor>& g) {
      Tensor gy = g[0].contiguous();
      Tensor gx = Tensor::empty(in_shape, gy.dtype(), gy.device());
      dispatch_float("max", gy.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels_for<T>(gy.device())
            .reduce_max_backward(gy.data<T>(), arg.data<int32_t>(), gx.data<T>(), s.outer, s.R,
                                 s.inner);
      });
      return std::vector<Tensor>{gx};
    });
  }
  return result;
}

namespace {

// Softmax over the last axis of a contiguous tensor, as a recorded op.
Tensor softmax_last(const Tensor& x, bool log_space) {
  const char* name = log_space ? "log_softmax" : "softmax";
  Tensor xc = x.contiguous();
  const int64_t cols = x.shape().back();
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(name, x.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(x.device()).softmax(xc.data<T>(), out.data<T>(), rows, cols, log_space);
  });
  if (any_requires_grad({xc})) {
    Tensor y = out.detach();
    record_node(name, {xc}, out, [=](const std::vector<Tensor>& g) {
      Tensor gy = g[0].contiguous();
      Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
      dispatch_float(name, y.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels_for<T>(y.device())
            .softmax_backward(y.data<T>(), gy.data<T>(), gx.data<T>(), rows, cols, log_space);
      });
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor softmax_any_axis(const Tensor& x, int axis, bool log_space) {
  GLIMPSE_OP_SCOPE(log_space ? "log_softmax" : "softmax", softmax_any_axis, x, axis,
                   log_space);
  const char* name = log_space ? "log_softmax" : "softmax";
  check_float(name, x, "input");
  if (x.rank() == 0) fail(name, "needs at least one axis");
  axis = normalize_axis(name, axis, x.rank());
  if (axis == x.rank() - 1) return softmax_last(x, log_space);
  // Move the axis last, normalise, move it back (two strided copies; rare in this project).
  Tensor moved = transpose(x, axis, x.rank() - 1);
  return transpose(softmax_last(moved, log_space), axis, x.rank() - 1);
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) { return softmax_any_axis(x, axis, false); }
Tensor log_softmax(const Tensor& x, int axis) { return softmax_any_axis(x, axis, true); }

Tensor argmax(const Tensor& x) {
  GLIMPSE_OP_SCOPE("argmax", argmax, x);
  check_float("argmax", x, "input");
  if (x.rank() == 0 || x.shape().back() == 0)
    fail("argmax", "needs a non-empty last axis, got shape ", shape_str(x.shape()));
  Tensor xc = x.contiguous().detach();
  const int64_t cols = x.shape().back();
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  Tensor out = Tensor::empty(out_shape, DType::I32, x.device());
  dispatch_float("argmax", x.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(x.device()).argmax_rows(xc.data<T>(), out.data<int32_t>(), x.numel() / cols, cols);
  });
  return out;
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k) {
  GLIMPSE_OP_SCOPE("topk", topk, x, k);
  check_float("topk", x, "input");
  if (x.rank() == 0) fail("topk", "needs at least one axis");
  const int64_t cols = x.shape().back();
  if (k <= 0 || k > cols) fail("topk", "k = ", k, " is outside [1, ", cols, "] for shape ",
                               shape_str(x.shape()));
  Tensor xc = x.contiguous().detach();
  Shape out_shape = x.shape();
  out_shape.back() = k;
  Tensor values = Tensor::empty(out_shape, x.dtype(), x.device());
  Tensor indices = Tensor::empty(out_shape, DType::I32, x.device());
  dispatch_float("topk", x.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels_for<T>(x.device())
        .topk_rows(xc.data<T>(), values.data<T>(), indices.data<int32_t>(), x.numel() / cols, cols, k);
  });
  return {values, indices};
}

}  // namespace glimpse
