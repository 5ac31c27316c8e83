// matmul: plain and batched matrix products on the backend GEMM, with their backward.
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

// The forward product without autograd. a: [..., M, K] (or [..., K, M] when trans_a),
// b: [K, N] / [..., K, N] (or transposed). Batch axes must match, or one side has none.
Tensor matmul_forward(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb) {
  const char* name = "matmul";
  check_float(name, a_in, "left operand");
  check_float(name, b_in, "right operand");
  check_same_dtype_device(name, a_in, b_in);
  if (a_in.rank() < 2 || b_in.rank() < 2)
    fail(name, "operands need rank >= 2, got ", shape_str(a_in.shape()), " and ",
         shape_str(b_in.shape()));
  Tensor a = a_in.contiguous().detach();
  Tensor b = b_in.contiguous().detach();
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  const int64_t a_rows = sa[sa.size() - 2], a_cols = sa.back();
  const int64_t b_rows = sb[sb.size() - 2], b_cols = sb.back();
  const int64_t M = ta ? a_cols : a_rows, K = ta ? a_rows : a_cols;
  const int64_t Kb = tb ? b_cols : b_rows, N = tb ? b_rows : b_cols;
  if (K != Kb)
    fail(name, "inner dimensions differ: ", shape_str(sa), (ta ? "^T" : ""), " x ", shape_str(sb),
         (tb ? "^T" : ""), " (", K, " vs ", Kb, ")");
  Shape batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  if (!batch_a.empty() && !batch_b.empty() && batch_a != batch_b)
    fail(name, "batch axes differ: ", shape_str(sa), " x ", shape_str(sb));
  const Shape& batch = batch_a.empty() ? batch_b : batch_a;
  const int64_t B = shape_numel(batch);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  profiler::add_flops(2.0 * static_cast<double>(B) * M * N * K);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  dispatch_float(name, a.dtype(), [&](auto t) {
    using T = decltype(t);
    const Kernels<T>& k = kernels_for<T>(a.device());
    if (K == 0) {
      k.fill(out.data<T>(), out.numel(), T(0));
      return;
    }
    const int64_t lda = a_cols, ldb = b_cols;
    if (B == 1 || (batch_b.empty() && !ta)) {
      // One GEMM: a batched left operand without transpose folds its batch into M.
      const int64_t rows = batch_b.empty() && !ta ? B * M : M;
      k.gemm(ta, tb, rows, N, K, T(1), a.data<T>(), lda, b.data<T>(), ldb, T(0), out.data<T>(), N);
    } else {
      const int64_t stride_a = batch_a.empty() ? 0 : a_rows * a_cols;
      const int64_t stride_b = batch_b.empty() ? 0 : b_rows * b_cols;
      k.gemm_strided_batched(ta, tb, M, N, K, T(1), a.data<T>(), lda, stride_a, b.data<T>(), ldb,
                             stride_b, T(0), out.data<T>(), N, M * N, B);
    }
  });
  return out;
}

// Reduces a gradient computed with batch axes down to an operand that had none.
Tensor fold_batch(const Tensor& g, const Shape& target) {
  if (g.shape() == target) return g;
  std::vector<int> axes;
  for (int i = 0; i < g.rank() - 2; ++i) axes.push_back(i);
  return sum(g, axes, false);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  GLIMPSE_OP_SCOPE("matmul", matmul, a, b, ta, tb);
  Tensor out = matmul_forward(a, b, ta, tb);
  if (any_requires_grad({a, b})) {
    Tensor sa = a.detach(), sb = b.detach();
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    record_node("matmul", {a, b}, out, [=](const std::vector<Tensor>& g) {
      const Tensor& gc = g[0];
      Tensor ga, gb;
      // C = op(A) op(B):  dop(A) = dC op(B)^T,  dop(B) = op(A)^T dC.
      if (need_a) {
        ga = ta ? matmul_forward(sb, gc, tb, true) : matmul_forward(gc, sb, false, !tb);
        ga = fold_batch(ga, sa.shape());
      }
      if (need_b) {
        if (!tb && sb.rank() == 2 && sa.rank() > 2 && !ta) {
          // Batched A against a plain B: fold the batch into the GEMM's K axis.
          const int64_t K = sa.shape().back();
          Tensor a2 = reshape(sa, {-1, K});
          Tensor g2 = reshape(gc, {-1, gc.shape().back()});
          gb = matmul_forward(a2, g2, true, false);
        } else {
          gb = tb ? matmul_forward(gc, sa, true, ta) : matmul_forward(sa, gc, !ta, false);
          gb = fold_batch(gb, sb.shape());
        }
      }
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

}  // namespace glimpse
