// The Keras GRU over a whole sequence as one op, with backpropagation through time written out.
//
// Forward:  one GEMM projects every time step's input at once (xp = x W + b_in), then per step the
//           recurrent GEMM(s) and fused gate kernels. reset_after: hp = h R + b_rec, one kernel.
//           reset before: hp_zr = h R_zr, a kernel for z, r and r*h, hp_h = (r*h) R_h, a kernel
//           for the candidate and the new state.
// Backward: walks the steps in reverse; per step the gate-backward kernel(s) and the GEMM(s) that
//           carry the gradient to h_{t-1}; the weight gradients are big GEMMs over all steps at
//           the end.
// Internally everything is time-major ([T, B, ...]) so each step's rows are contiguous. Buffers
// indexed by the processing step s hold the recurrence (hp, gates, seq); xp and dxp stay in input
// order, so go_backwards only changes which input step s reads: T-1-s instead of s.
#include "tensor/op_helpers.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace glimpse {

using detail::check_float;
using detail::check_same_dtype_device;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;

std::pair<Tensor, Tensor> gru_sequence(const Tensor& x, const Tensor& h0, const Tensor& kernel,
                                       const Tensor& recurrent_kernel, const Tensor& bias,
                                       GruOptions options) {
  GLIMPSE_OP_SCOPE("gru_sequence", gru_sequence, x, h0, kernel, recurrent_kernel, bias, options);
  const char* name = "gru_sequence";
  check_float(name, x, "input");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&h0, &kernel, &recurrent_kernel, &bias}) {
    check_float(name, *t, "weight/state");
    check_same_dtype_device(name, x, *t);
  }
  if (x.rank() != 3) fail(name, "input must be [batch, time, features], got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1], I = x.shape()[2];
  const int64_t U = recurrent_kernel.rank() == 2 ? recurrent_kernel.shape()[0] : -1;
  const bool reset_after = options.reset_after;
  const Shape bias_shape = reset_after ? Shape{2, 3 * U} : Shape{3 * U};
  if (kernel.shape() != Shape{I, 3 * U} || recurrent_kernel.shape() != Shape{U, 3 * U} ||
      bias.shape() != bias_shape)
    fail(name, "weights kernel ", shape_str(kernel.shape()), ", recurrent_kernel ",
         shape_str(recurrent_kernel.shape()), ", bias ", shape_str(bias.shape()),
         " do not fit input ", shape_str(x.shape()), " (expected [", I, ", 3U], [U, 3U], ",
         reset_after ? "[2, 3U] with reset_after" : "[3U] with the reset gate before the matmul",
         ")");
  if (h0.shape() != Shape{B, U})
    fail(name, "initial state ", shape_str(h0.shape()), " must be [", B, ", ", U, "]");
  if (T == 0) fail(name, "the sequence is empty (time steps = 0)");

  const Device dev = x.device();
  const DType dt = x.dtype();
  const bool backwards = options.go_backwards;
  // The input time step that processing step s reads.
  auto input_step = [T, backwards](int64_t s) { return backwards ? T - 1 - s : s; };
  Tensor xt = transpose(x.detach(), 0, 1).contiguous();  // [T, B, I]
  Tensor W = kernel.contiguous().detach();
  Tensor R = recurrent_kernel.contiguous().detach();
  Tensor bias_c = bias.contiguous().detach();
  Tensor h_init = h0.contiguous().detach();

  // The GEMMs: x W over all steps, h R per step (the backward does about twice as much).
  const double gemm_flops = 2.0 * T * B * 3 * U * (I + U);
  profiler::add_flops(gemm_flops);
  Tensor xp = Tensor::empty({T, B, 3 * U}, dt, dev);     // x W + b_in, every input step
  Tensor hp = Tensor::empty({T, B, 3 * U}, dt, dev);     // the recurrent projections per step
  Tensor gates = Tensor::empty({T, B, 3 * U}, dt, dev);  // z, r, c per step
  Tensor seq = Tensor::empty({T, B, U}, dt, dev);
  // reset before the matmul: r * h_prev per step, the recurrent input of R_h (for dR).
  Tensor rhs = reset_after ? Tensor() : Tensor::empty({T, B, U}, dt, dev);

  dispatch_float(name, dt, [&](auto tag) {
    using S = decltype(tag);
    const Kernels<S>& k = kernels_for<S>(dev);
    const int64_t G = 3 * U;
    // Broadcast the (input) bias into xp first, then accumulate the GEMM on top (beta = 1).
    k.copy_2d(bias_c.data<S>(), 0, xp.data<S>(), G, T * B, G);
    k.gemm(false, false, T * B, G, I, S(1), xt.data<S>(), I, W.data<S>(), G, S(1), xp.data<S>(), G);
    for (int64_t s = 0; s < T; ++s) {
      const S* h_prev = s == 0 ? h_init.data<S>() : seq.data<S>() + (s - 1) * B * U;
      const S* xp_s = xp.data<S>() + input_step(s) * B * G;
      S* hp_s = hp.data<S>() + s * B * G;
      S* gates_s = gates.data<S>() + s * B * G;
      S* h_new = seq.data<S>() + s * B * U;
      if (reset_after) {
        k.copy_2d(bias_c.data<S>() + G, 0, hp_s, G, B, G);
        k.gemm(false, false, B, G, U, S(1), h_prev, U, R.data<S>(), G, S(1), hp_s, G);
        k.gru_step(xp_s, hp_s, h_prev, h_new, gates_s, B, U);
      } else {
        S* rh = rhs.data<S>() + s * B * U;
        k.gemm(false, false, B, 2 * U, U, S(1), h_prev, U, R.data<S>(), G, S(0), hp_s, G);
        k.gru_gates_reset_before(xp_s, hp_s, h_prev, gates_s, rh, B, U);
        k.gemm(false, false, B, U, U, S(1), rh, U, R.data<S>() + 2 * U, G, S(0), hp_s + 2 * U, G);
        k.gru_output_reset_before(xp_s, hp_s, h_prev, gates_s, h_new, B, U);
      }
    }
  });

  Tensor sequence = transpose(seq, 0, 1).contiguous();  // [B, T, U]
  Tensor state = slice(seq, 0, T - 1, T).contiguous();
  state = reshape(state, {B, U});
  // `sequence` and `state` were built from detached tensors; give them a fresh identity so the
  // node below is their only producer.
  sequence = sequence.detach();
  state = state.detach();

  std::vector<Tensor> inputs{x, h0, kernel, recurrent_kernel, bias};
  if (any_requires_grad(inputs)) {
    record_node(name, inputs, {sequence, state}, [=](const std::vector<Tensor>& g) {
      profiler::add_flops(2 * gemm_flops);
      Tensor g_seq = transpose(g[0], 0, 1).contiguous();  // [T, B, U]
      Tensor dh = g[1].contiguous().clone();              // dL/dh flowing backwards
      Tensor dxp = Tensor::empty({T, B, 3 * U}, dt, dev);  // input order
      Tensor dhp = Tensor::empty({T, B, 3 * U}, dt, dev);  // processing order
      Tensor dh_prev = Tensor::empty({B, U}, dt, dev);
      Tensor drh = reset_after ? Tensor() : Tensor::empty({B, U}, dt, dev);
      // h_{s-1} for every step, stacked [T, B, U]: h0 then the outputs of steps 0..T-2.
      Tensor h_prevs = T == 1 ? reshape(h_init, {1, B, U})
                              : concat({reshape(h_init, {1, B, U}), slice(seq, 0, 0, T - 1)}, 0);
      dispatch_float(name, dt, [&](auto tag) {
        using S = decltype(tag);
        const Kernels<S>& k = kernels_for<S>(dev);
        const int64_t G = 3 * U;
        for (int64_t s = T - 1; s >= 0; --s) {
          k.axpy(B * U, S(1), g_seq.data<S>() + s * B * U, dh.data<S>());
          const S* gates_s = gates.data<S>() + s * B * G;
          const S* h_prev = h_prevs.data<S>() + s * B * U;
          S* dxp_s = dxp.data<S>() + input_step(s) * B * G;
          S* dhp_s = dhp.data<S>() + s * B * G;
          if (reset_after) {
            k.gru_step_backward(dh.data<S>(), gates_s, hp.data<S>() + s * B * G, h_prev, dxp_s,
                                dhp_s, dh_prev.data<S>(), B, U);
            // dh_{s-1} = (direct path through z) + dhp R^T
            k.gemm(false, true, B, U, G, S(1), dhp_s, G, R.data<S>(), G, S(1), dh_prev.data<S>(), U);
          } else {
            k.gru_output_reset_before_backward(dh.data<S>(), gates_s, h_prev, dhp_s,
                                               dh_prev.data<S>(), B, U);
            // d(r * h_prev) = dpre_h R_h^T, then the r block and the path through r * h_prev.
            k.gemm(false, true, B, U, U, S(1), dhp_s + 2 * U, G, R.data<S>() + 2 * U, G, S(0),
                   drh.data<S>(), U);
            k.gru_gates_reset_before_backward(drh.data<S>(), gates_s, h_prev, dhp_s,
                                              dh_prev.data<S>(), B, U);
            k.gemm(false, true, B, U, 2 * U, S(1), dhp_s, G, R.data<S>(), G, S(1),
                   dh_prev.data<S>(), U);
            // No recurrent bias: the input side sees the same pre-activation gradients.
            k.copy_2d(dhp_s, G, dxp_s, G, B, G);
          }
          std::swap(dh, dh_prev);
        }
      });
      Tensor dxp2 = reshape(dxp, {T * B, 3 * U});
      Tensor dhp2 = reshape(dhp, {T * B, 3 * U});
      Tensor dW = matmul(reshape(xt, {T * B, I}), dxp2, true, false);
      Tensor h_prevs2 = reshape(h_prevs, {T * B, U});
      Tensor dR, db;
      if (reset_after) {
        dR = matmul(h_prevs2, dhp2, true, false);
        db = concat({reshape(sum(dxp2, {0}), {1, 3 * U}), reshape(sum(dhp2, {0}), {1, 3 * U})}, 0);
      } else {
        // R_z, R_r multiply h_prev; R_h multiplies r * h_prev.
        dR = concat({matmul(h_prevs2, slice(dhp2, 1, 0, 2 * U), true, false),
                     matmul(reshape(rhs, {T * B, U}), slice(dhp2, 1, 2 * U, 3 * U), true, false)},
                    1);
        db = sum(dxp2, {0});
      }
      Tensor dx = transpose(reshape(matmul(dxp2, W, false, true), {T, B, I}), 0, 1).contiguous();
      return std::vector<Tensor>{dx, dh, dW, dR, db};
    });
  }
  return {sequence, state};
}

}  // namespace glimpse
