// Fused neural-network ops: embedding gather, log-softmax + masked NLL, layer norm, batch norm and
// dropout. Each has a hand-written backward in its kernel; the tests check them against finite
// differences and against the same math composed from primitive ops.
#include "tensor/op_helpers.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace glimpse {

using detail::check_float;
using detail::check_same_dtype_device;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;

namespace {
// Indices must lie in [0, limit), or in [-limit, limit) when negative ones count from the end.
void check_ids(const char* op, const Tensor& ids, int64_t limit, const char* what,
               bool allow_negative = false) {
  detail::check_defined(op, ids, what);
  if (ids.dtype() != DType::I32)
    fail(op, what, " must be int32, got ", dtype_name(ids.dtype()), " of shape ",
         shape_str(ids.shape()));
  // Range checks need the values on the host; on an accelerator they would force a copy per
  // call, so there the kernels clamp instead and only CPU runs validate.
  if (ids.device() == Device::CPU) {
    Tensor c = ids.contiguous();
    const int32_t* p = c.data<int32_t>();
    const int64_t low = allow_negative ? -limit : 0;
    for (int64_t i = 0; i < c.numel(); ++i)
      if (p[i] < low || p[i] >= limit)
        fail(op, what, " value ", p[i], " at flat position ", i, " is outside [", low, ", ",
             limit, ")");
  }
}

// The row gather behind gather_rows (strict: token ids are never negative) and gather.
Tensor gather_table_rows(const char* name, const Tensor& table, const Tensor& ids,
                         const char* ids_name, bool allow_negative) {
  check_float(name, table, "table");
  detail::check_rank(name, table, 2, "table");
  check_ids(name, ids, table.shape()[0], ids_name, allow_negative);
  if (ids.device() != table.device())
    fail(name, "ids are on ", device_name(ids.device()), " but the table is on ",
         device_name(table.device()));
  Tensor t = table.contiguous();
  Tensor idx = ids.contiguous();
  const int64_t V = table.shape()[0], D = table.shape()[1];
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, table.dtype(), table.device());
  dispatch_float(name, table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(t.device()).gather_rows(t.data<T>(), V, idx.data<int32_t>(), out.data<T>(),
                                           idx.numel(), D);
  });
  if (any_requires_grad({t})) {
    Shape table_shape = t.shape();
    record_node(name, {t}, out, [=](const std::vector<Tensor>& g) {
      Tensor gy = g[0].contiguous();
      Tensor gt = Tensor::zeros(table_shape, gy.dtype(), gy.device());
      dispatch_float(name, gy.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels_for<T>(gy.device()).scatter_add_rows(gy.data<T>(), idx.data<int32_t>(),
                                                      gt.data<T>(), V, idx.numel(), D);
      });
      return std::vector<Tensor>{gt};
    });
  }
  return out;
}
}  // namespace

Tensor gather_rows(const Tensor& table, const Tensor& ids) {
  GLIMPSE_OP_SCOPE("gather_rows", gather_rows, table, ids);
  return gather_table_rows("gather_rows", table, ids, "ids", /*allow_negative=*/false);
}

Tensor gather(const Tensor& x, const Tensor& indices, int axis) {
  GLIMPSE_OP_SCOPE("gather", gather, x, indices, axis);
  const char* name = "gather";
  detail::check_defined(name, x, "x");
  if (x.rank() == 0) fail(name, "x must have at least one axis, got a scalar");
  axis = detail::normalize_axis(name, axis, x.rank());
  // Bring the gathered axis first and flatten the rest: a row gather on [n, rest].
  std::vector<int> to_front{axis};
  Shape rest_shape;
  for (int i = 0; i < x.rank(); ++i)
    if (i != axis) { to_front.push_back(i); rest_shape.push_back(x.shape()[i]); }
  Tensor table = reshape(permute(x, to_front).contiguous(), {x.shape()[axis], shape_numel(rest_shape)});
  Tensor rows = gather_table_rows(name, table, indices, "indices", /*allow_negative=*/true);
  // [indices..., before..., after...] -> [before..., indices..., after...].
  Shape unflat = indices.shape();
  unflat.insert(unflat.end(), rest_shape.begin(), rest_shape.end());
  const int q = indices.rank();
  std::vector<int> order;
  for (int i = 0; i < axis; ++i) order.push_back(q + i);
  for (int i = 0; i < q; ++i) order.push_back(i);
  for (int i = q + axis; i < static_cast<int>(unflat.size()); ++i) order.push_back(i);
  return permute(reshape(rows, unflat), order).contiguous();
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  GLIMPSE_OP_SCOPE("cross_entropy", cross_entropy, logits, targets, ignore_index);
  const char* name = "cross_entropy";
  check_float(name, logits, "logits");
  if (logits.rank() < 1) fail(name, "logits need a class axis, got a scalar");
  const int64_t V = logits.shape().back();
  Shape expected(logits.shape().begin(), logits.shape().end() - 1);
  detail::check_defined(name, targets, "targets");
  if (targets.shape() != expected)
    fail(name, "targets of shape ", shape_str(targets.shape()), " do not match logits ",
         shape_str(logits.shape()), " (expected ", shape_str(expected), ")");
  if (targets.dtype() != DType::I32) fail(name, "targets must be int32");
  if (targets.device() != logits.device()) fail(name, "targets and logits are on different devices");
  if (targets.device() == Device::CPU) {
    Tensor c = targets.contiguous();
    const int32_t* p = c.data<int32_t>();
    for (int64_t i = 0; i < c.numel(); ++i)
      if (p[i] != ignore_index && (p[i] < 0 || p[i] >= V))
        fail(name, "target ", p[i], " at flat position ", i, " is outside [0, ", V, ")");
  }
  Tensor x = logits.contiguous();
  Tensor tg = targets.contiguous();
  const int64_t rows = tg.numel();
  Tensor loss_rows = Tensor::empty({rows}, x.dtype(), x.device());
  Tensor valid = Tensor::empty({rows}, x.dtype(), x.device());
  dispatch_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(x.device()).cross_entropy(x.data<T>(), tg.data<int32_t>(), loss_rows.data<T>(),
                                             valid.data<T>(), rows, V, ignore_index);
  });
  if (any_requires_grad({x})) {
    Tensor saved = x.detach();
    record_node("cross_entropy_rows", {x}, loss_rows, [=](const std::vector<Tensor>& g) {
      Tensor gl = g[0].contiguous();
      Tensor gx = Tensor::empty(saved.shape(), saved.dtype(), saved.device());
      dispatch_float(name, saved.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels_for<T>(saved.device())
            .cross_entropy_backward(saved.data<T>(), tg.data<int32_t>(), gl.data<T>(),
                                    gx.data<T>(), rows, V, ignore_index);
      });
      return std::vector<Tensor>{gx};
    });
  }
  // Keras: sum(loss * mask) / sum(mask). The count is read on the host (one value per step).
  const double count = sum(valid).item();
  if (count == 0) return mul_scalar(sum(loss_rows), 0.0);
  return mul_scalar(sum(loss_rows), 1.0 / count);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps) {
  LayerNormStatistics unused;
  return layer_norm(x, gamma, beta, eps, unused);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                  LayerNormStatistics& statistics) {
  GLIMPSE_OP_SCOPE("layer_norm", layer_norm, x, gamma, beta, eps, statistics);
  const char* name = "layer_norm";
  check_float(name, x, "input");
  check_float(name, gamma, "gamma");
  check_float(name, beta, "beta");
  check_same_dtype_device(name, x, gamma);
  check_same_dtype_device(name, x, beta);
  if (x.rank() < 1) fail(name, "input needs at least one axis");
  const int64_t C = x.shape().back();
  if (gamma.shape() != Shape{C} || beta.shape() != Shape{C})
    fail(name, "gamma ", shape_str(gamma.shape()), " and beta ", shape_str(beta.shape()),
         " must be [", C, "] for input ", shape_str(x.shape()));
  Tensor xc = x.contiguous(), gc = gamma.contiguous(), bc = beta.contiguous();
  const int64_t rows = C == 0 ? 0 : x.numel() / C;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mu = Tensor::empty({rows}, x.dtype(), x.device());
  Tensor rstd = Tensor::empty({rows}, x.dtype(), x.device());
  dispatch_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(x.device()).layer_norm(xc.data<T>(), gc.data<T>(), bc.data<T>(), out.data<T>(),
                                          mu.data<T>(), rstd.data<T>(), rows, C,
                                          static_cast<T>(eps));
  });
  // Copies: mu and rstd also feed the backward pass below, which must not see a caller's edits.
  statistics.mean = mu.clone();
  statistics.inv_std = rstd.clone();
  if (any_requires_grad({xc, gc, bc})) {
    Tensor sx = xc.detach(), sg = gc.detach();
    record_node(name, {xc, gc, bc}, out, [=](const std::vector<Tensor>& g) {
      Tensor gy = g[0].contiguous();
      Tensor gx = Tensor::empty(sx.shape(), sx.dtype(), sx.device());
      Tensor gg = Tensor::empty({C}, sx.dtype(), sx.device());
      Tensor gb = Tensor::empty({C}, sx.dtype(), sx.device());
      dispatch_float(name, sx.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels_for<T>(sx.device())
            .layer_norm_backward(sx.data<T>(), sg.data<T>(), mu.data<T>(), rstd.data<T>(),
                                 gy.data<T>(), gx.data<T>(), gg.data<T>(), gb.data<T>(), rows, C);
      });
      return std::vector<Tensor>{gx, gg, gb};
    });
  }
  return out;
}

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& moving_mean,
                  Tensor& moving_variance, bool training, double momentum, double eps) {
  GLIMPSE_OP_SCOPE("batch_norm", batch_norm, x, gamma, beta, moving_mean, moving_variance, training,
                   momentum, eps);
  const char* name = "batch_norm";
  check_float(name, x, "input");
  check_float(name, beta, "beta");
  check_float(name, moving_mean, "moving_mean");
  check_float(name, moving_variance, "moving_variance");
  if (x.rank() < 1) fail(name, "input needs a channel axis");
  const int64_t C = x.shape().back();
  for (const Tensor* t : std::initializer_list<const Tensor*>{&beta, &moving_mean, &moving_variance}) {
    check_same_dtype_device(name, x, *t);
    if (t->shape() != Shape{C})
      fail(name, "per-channel tensors must be [", C, "] for input ", shape_str(x.shape()), ", got ",
           shape_str(t->shape()));
  }
  const bool has_gamma = gamma.defined();
  if (has_gamma) {
    check_same_dtype_device(name, x, gamma);
    if (gamma.shape() != Shape{C})
      fail(name, "gamma must be [", C, "], got ", shape_str(gamma.shape()));
  }
  const int64_t N = C == 0 ? 0 : x.numel() / C;
  if (training && N == 0) fail(name, "training mode needs a non-empty batch");
  Tensor xc = x.contiguous();
  Tensor gc = has_gamma ? gamma.contiguous() : Tensor();
  Tensor bc = beta.contiguous();
  Tensor mu, var;
  if (training) {
    mu = Tensor::empty({C}, x.dtype(), x.device());
    var = Tensor::empty({C}, x.dtype(), x.device());
    dispatch_float(name, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels_for<T>(x.device()).batch_norm_stats(xc.data<T>(), mu.data<T>(), var.data<T>(), N, C);
    });
    // moving = moving * momentum + batch * (1 - momentum), in place, outside the graph.
    NoGradGuard no_grad;
    Tensor new_mean = add(mul_scalar(moving_mean.detach(), momentum), mul_scalar(mu, 1 - momentum));
    Tensor new_var =
        add(mul_scalar(moving_variance.detach(), momentum), mul_scalar(var, 1 - momentum));
    moving_mean.copy_(new_mean);
    moving_variance.copy_(new_var);
  } else {
    mu = moving_mean.contiguous().detach();
    var = moving_variance.contiguous().detach();
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(x.device()).batch_norm_forward(xc.data<T>(), mu.data<T>(), var.data<T>(),
                                                  has_gamma ? gc.data<T>() : nullptr, bc.data<T>(),
                                                  out.data<T>(), N, C, static_cast<T>(eps));
  });
  std::vector<Tensor> inputs{xc, bc};
  if (has_gamma) inputs.push_back(gc);
  if (any_requires_grad(inputs)) {
    Tensor sx = xc.detach(), sg = has_gamma ? gc.detach() : Tensor();
    record_node(name, inputs, out, [=](const std::vector<Tensor>& g) {
      Tensor gy = g[0].contiguous();
      Tensor gx = Tensor::empty(sx.shape(), sx.dtype(), sx.device());
      Tensor gg = Tensor::empty({C}, sx.dtype(), sx.device());
      Tensor gb = Tensor::empty({C}, sx.dtype(), sx.device());
      dispatch_float(name, sx.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels_for<T>(sx.device())
            .batch_norm_backward(sx.data<T>(), mu.data<T>(), var.data<T>(),
                                 has_gamma ? sg.data<T>() : nullptr, gy.data<T>(), gx.data<T>(),
                                 has_gamma ? gg.data<T>() : nullptr, gb.data<T>(), N, C,
                                 static_cast<T>(eps), training);
      });
      std::vector<Tensor> grads{gx, gb};
      if (has_gamma) grads.push_back(gg);
      return grads;
    });
  }
  return out;
}

Tensor dropout(const Tensor& x, double rate, uint64_t seed, uint64_t offset) {
  GLIMPSE_OP_SCOPE("dropout", dropout, x, rate, seed, offset);
  check_float("dropout", x, "input");
  if (rate < 0 || rate >= 1) fail("dropout", "rate ", rate, " is outside [0, 1)");
  if (rate == 0) return x;
  Tensor mask = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float("dropout", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels_for<T>(x.device()).dropout_mask(mask.data<T>(), mask.numel(), static_cast<T>(rate),
                                            seed, offset);
  });
  return mul(x, mask);
}

}  // namespace glimpse
