// Shape ops: reshape, transpose/permute and slice as views (no copy), concat and split.
#include <numeric>

#include "tensor/op_helpers.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace glimpse {

using detail::check_defined;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;
using detail::normalize_axis;

namespace {
// A new impl sharing x's storage with the given geometry.
Tensor make_view(const Tensor& x, Shape shape, Shape strides, int64_t offset) {
  auto view = std::make_shared<TensorImpl>();
  view->storage = x.impl()->storage;
  view->shape = std::move(shape);
  view->strides = std::move(strides);
  view->offset = offset;
  view->dtype = x.dtype();
  return Tensor(std::move(view));
}

// copy_2d for any dtype (int32 tensors are copied as 4-byte floats: the bits move unchanged).
void copy_block(const Tensor& src, int64_t src_ld, const Tensor& dst, int64_t dst_ld,
                int64_t dst_col, int64_t rows, int64_t cols) {
  if (rows == 0 || cols == 0) return;
  const Device device = src.device();
  if (src.dtype() == DType::F64) {
    kernels_f64(device).copy_2d(src.data<double>(), src_ld, dst.data<double>() + dst_col, dst_ld,
                                rows, cols);
    return;
  }
  // float32 and int32 share the 4-byte path.
  const float* s = static_cast<const float*>(src.impl()->storage->data) + src.offset();
  float* d = static_cast<float*>(dst.impl()->storage->data) + dst.offset() + dst_col;
  kernels_f32(device).copy_2d(s, src_ld, d, dst_ld, rows, cols);
}
}  // namespace

Tensor reshape(const Tensor& x, Shape shape) {
  GLIMPSE_OP_SCOPE("reshape", reshape, x, shape);
  check_defined("reshape", x, "input");
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail("reshape", "more than one -1 in target shape ", shape_str(shape));
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      fail("reshape", "negative dimension in target shape ", shape_str(shape));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      fail("reshape", "cannot infer -1 reshaping ", shape_str(x.shape()), " to ", shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  if (shape_numel(shape) != x.numel())
    fail("reshape", "cannot reshape ", shape_str(x.shape()), " (", x.numel(), " elements) to ",
         shape_str(shape), " (", shape_numel(shape), " elements)");
  if (shape == x.shape()) return x;
  Tensor base = x.contiguous();
  Tensor out = make_view(base, shape, contiguous_strides(shape), base.offset());
  if (any_requires_grad({base})) {
    Shape in_shape = x.shape();
    record_node("reshape", {base}, out, [in_shape](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{reshape(g[0], in_shape)};
    });
  }
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int>& order) {
  GLIMPSE_OP_SCOPE("permute", permute, x, order);
  check_defined("permute", x, "input");
  if (static_cast<int>(order.size()) != x.rank())
    fail("permute", "order has ", order.size(), " axes for a tensor of shape ", shape_str(x.shape()));
  std::vector<bool> seen(x.rank(), false);
  Shape shape(x.rank()), strides(x.rank());
  std::vector<int> inverse(x.rank());
  for (int i = 0; i < x.rank(); ++i) {
    int a = normalize_axis("permute", order[i], x.rank());
    if (seen[a]) fail("permute", "axis ", a, " appears twice in the order");
    seen[a] = true;
    shape[i] = x.shape()[a];
    strides[i] = x.strides()[a];
    inverse[a] = i;
  }
  Tensor out = make_view(x, shape, strides, x.offset());
  if (any_requires_grad({x})) {
    record_node("permute", {x}, out, [inverse](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{permute(g[0], inverse)};
    });
  }
  return out;
}

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  GLIMPSE_OP_SCOPE("transpose", transpose, x, axis0, axis1);
  check_defined("transpose", x, "input");
  std::vector<int> order(x.rank());
  std::iota(order.begin(), order.end(), 0);
  axis0 = normalize_axis("transpose", axis0, x.rank());
  axis1 = normalize_axis("transpose", axis1, x.rank());
  std::swap(order[axis0], order[axis1]);
  return permute(x, order);
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end) {
  GLIMPSE_OP_SCOPE("slice", slice, x, axis, start, end);
  check_defined("slice", x, "input");
  axis = normalize_axis("slice", axis, x.rank());
  const int64_t n = x.shape()[axis];
  if (start < 0 || end > n || start > end)
    fail("slice", "range [", start, ", ", end, ") is outside axis ", axis, " of shape ",
         shape_str(x.shape()));
  Shape shape = x.shape();
  shape[axis] = end - start;
  Tensor out = make_view(x, shape, x.strides(), x.offset() + start * x.strides()[axis]);
  if (any_requires_grad({x})) {
    Shape in_shape = x.shape();
    record_node("slice", {x}, out, [=](const std::vector<Tensor>& g) {
      // Scatter the gradient back into a zero tensor of the input's shape.
      Tensor gy = g[0].contiguous();
      Tensor gx = Tensor::zeros(in_shape, gy.dtype(), gy.device());
      int64_t outer = 1, inner = 1;
      for (int i = 0; i < axis; ++i) outer *= in_shape[i];
      for (size_t i = axis + 1; i < in_shape.size(); ++i) inner *= in_shape[i];
      copy_block(gy, (end - start) * inner, gx, n * inner, start * inner, outer,
                 (end - start) * inner);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  GLIMPSE_OP_SCOPE("concat", concat, xs, axis);
  if (xs.empty()) fail("concat", "needs at least one tensor");
  for (const Tensor& x : xs) check_defined("concat", x, "an input");
  const Tensor& first = xs[0];
  axis = normalize_axis("concat", axis, first.rank());
  Shape shape = first.shape();
  int64_t total = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    bool compatible = x.rank() == first.rank() && x.dtype() == first.dtype() &&
                      x.device() == first.device();
    for (int i = 0; compatible && i < x.rank(); ++i)
      if (i != axis && x.shape()[i] != first.shape()[i]) compatible = false;
    if (!compatible)
      fail("concat", "input ", k, " (", shape_str(x.shape()), ", ", dtype_name(x.dtype()),
           ") does not match input 0 (", shape_str(first.shape()), ", ", dtype_name(first.dtype()),
           ") outside axis ", axis);
    total += x.shape()[axis];
  }
  shape[axis] = total;
  profiler::Scope scope("concat", [&] { return std::to_string(xs.size()) + " -> " + shape_str(shape); });
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[i];
  for (size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
  int64_t column = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    Tensor xc = x.contiguous().detach();
    const int64_t width = x.shape()[axis] * inner;
    copy_block(xc, width, out, total * inner, column, outer, width);
    column += width;
    sizes.push_back(x.shape()[axis]);
  }
  if (any_requires_grad(xs)) {
    record_node("concat", xs, out, [sizes, axis](const std::vector<Tensor>& g) {
      std::vector<Tensor> grads;
      int64_t start = 0;
      for (int64_t size : sizes) {
        grads.push_back(slice(g[0], axis, start, start + size).contiguous());
        start += size;
      }
      return grads;
    });
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int axis) {
  GLIMPSE_OP_SCOPE("split", split, x, sizes, axis);
  check_defined("split", x, "input");
  axis = normalize_axis("split", axis, x.rank());
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  if (total != x.shape()[axis])
    fail("split", "sizes add up to ", total, " but axis ", axis, " of ", shape_str(x.shape()),
         " has ", x.shape()[axis]);
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t s : sizes) {
    parts.push_back(slice(x, axis, start, start + s));
    start += s;
  }
  return parts;
}

Tensor squeeze(const Tensor& x, int axis) {
  GLIMPSE_OP_SCOPE("squeeze", squeeze, x, axis);
  check_defined("squeeze", x, "input");
  axis = normalize_axis("squeeze", axis, x.rank());
  if (x.shape()[axis] != 1)
    fail("squeeze", "axis ", axis, " of shape ", shape_str(x.shape()), " is not of size 1");
  Shape shape = x.shape();
  shape.erase(shape.begin() + axis);
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, int axis) {
  GLIMPSE_OP_SCOPE("unsqueeze", unsqueeze, x, axis);
  check_defined("unsqueeze", x, "input");
  axis = normalize_axis("unsqueeze", axis, x.rank() + 1);
  Shape shape = x.shape();
  shape.insert(shape.begin() + axis, 1);
  return reshape(x, shape);
}

}  // namespace glimpse
