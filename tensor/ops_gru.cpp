// The Keras GRU over a whole sequence as one op, with backpropagation through time written out.
//
// Forward:  one GEMM projects every time step's input at once (xp = x W + b_in), then per step one
//           recurrent GEMM (hp = h R + b_rec) and one fused gate kernel.
// Backward: walks the steps in reverse; per step one fused gate-backward kernel and one GEMM for
//           dh_prev += dhp R^T; the weight gradients are two big GEMMs over all steps at the end.
// Internally everything is time-major ([T, B, ...]) so each step's rows are contiguous.
#include "tensor/op_helpers.h"
#include "tensor/ops.h"

namespace glimpse {

using detail::check_float;
using detail::check_same_dtype_device;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;

std::pair<Tensor, Tensor> gru_sequence(const Tensor& x, const Tensor& h0, const Tensor& kernel,
                                       const Tensor& recurrent_kernel, const Tensor& bias) {
  const char* name = "gru_sequence";
  check_float(name, x, "input");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&h0, &kernel, &recurrent_kernel, &bias}) {
    check_float(name, *t, "weight/state");
    check_same_dtype_device(name, x, *t);
  }
  if (x.rank() != 3) fail(name, "input must be [batch, time, features], got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1], I = x.shape()[2];
  const int64_t U = recurrent_kernel.rank() == 2 ? recurrent_kernel.shape()[0] : -1;
  if (kernel.shape() != Shape{I, 3 * U} || recurrent_kernel.shape() != Shape{U, 3 * U} ||
      bias.shape() != Shape{2, 3 * U})
    fail(name, "weights kernel ", shape_str(kernel.shape()), ", recurrent_kernel ",
         shape_str(recurrent_kernel.shape()), ", bias ", shape_str(bias.shape()),
         " do not fit input ", shape_str(x.shape()), " (expected [", I, ", 3U], [U, 3U], [2, 3U])");
  if (h0.shape() != Shape{B, U})
    fail(name, "initial state ", shape_str(h0.shape()), " must be [", B, ", ", U, "]");
  if (T == 0) fail(name, "the sequence is empty (time steps = 0)");

  const Device dev = x.device();
  const DType dt = x.dtype();
  Tensor xt = transpose(x.detach(), 0, 1).contiguous();  // [T, B, I]
  Tensor W = kernel.contiguous().detach();
  Tensor R = recurrent_kernel.contiguous().detach();
  Tensor bias_c = bias.contiguous().detach();
  Tensor h_init = h0.contiguous().detach();

  Tensor xp = Tensor::empty({T, B, 3 * U}, dt, dev);     // x W + b_in, every step
  Tensor hp = Tensor::empty({T, B, 3 * U}, dt, dev);     // h R + b_rec, per step (kept for backward)
  Tensor gates = Tensor::empty({T, B, 3 * U}, dt, dev);  // z, r, c per step
  Tensor seq = Tensor::empty({T, B, U}, dt, dev);

  dispatch_float(name, dt, [&](auto tag) {
    using S = decltype(tag);
    const Kernels<S>& k = kernels_for<S>(dev);
    const int64_t G = 3 * U;
    // Broadcast the biases into the outputs first, then accumulate the GEMMs on top (beta = 1).
    k.copy_2d(bias_c.data<S>(), 0, xp.data<S>(), G, T * B, G);
    k.gemm(false, false, T * B, G, I, S(1), xt.data<S>(), I, W.data<S>(), G, S(1), xp.data<S>(), G);
    for (int64_t t = 0; t < T; ++t) {
      const S* h_prev = t == 0 ? h_init.data<S>() : seq.data<S>() + (t - 1) * B * U;
      S* hp_t = hp.data<S>() + t * B * G;
      k.copy_2d(bias_c.data<S>() + G, 0, hp_t, G, B, G);
      k.gemm(false, false, B, G, U, S(1), h_prev, U, R.data<S>(), G, S(1), hp_t, G);
      k.gru_step(xp.data<S>() + t * B * G, hp_t, h_prev, seq.data<S>() + t * B * U,
                 gates.data<S>() + t * B * G, B, U);
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
      Tensor g_seq = transpose(g[0], 0, 1).contiguous();  // [T, B, U]
      Tensor dh = g[1].contiguous().clone();              // dL/dh_T flowing backwards
      Tensor dxp = Tensor::empty({T, B, 3 * U}, dt, dev);
      Tensor dhp = Tensor::empty({T, B, 3 * U}, dt, dev);
      Tensor dh_prev = Tensor::empty({B, U}, dt, dev);
      // h_{t-1} for every step, stacked [T, B, U]: h0 then the outputs of steps 0..T-2.
      Tensor h_prevs = T == 1 ? reshape(h_init, {1, B, U})
                              : concat({reshape(h_init, {1, B, U}), slice(seq, 0, 0, T - 1)}, 0);
      dispatch_float(name, dt, [&](auto tag) {
        using S = decltype(tag);
        const Kernels<S>& k = kernels_for<S>(dev);
        const int64_t G = 3 * U;
        for (int64_t t = T - 1; t >= 0; --t) {
          k.axpy(B * U, S(1), g_seq.data<S>() + t * B * U, dh.data<S>());
          k.gru_step_backward(dh.data<S>(), gates.data<S>() + t * B * G, hp.data<S>() + t * B * G,
                              h_prevs.data<S>() + t * B * U, dxp.data<S>() + t * B * G,
                              dhp.data<S>() + t * B * G, dh_prev.data<S>(), B, U);
          // dh_{t-1} = (direct path through z) + dhp R^T
          k.gemm(false, true, B, U, G, S(1), dhp.data<S>() + t * B * G, G, R.data<S>(), G, S(1),
                 dh_prev.data<S>(), U);
          std::swap(dh, dh_prev);
        }
      });
      Tensor dxp2 = reshape(dxp, {T * B, 3 * U});
      Tensor dhp2 = reshape(dhp, {T * B, 3 * U});
      Tensor dW = matmul(reshape(xt, {T * B, I}), dxp2, true, false);
      Tensor dR = matmul(reshape(h_prevs, {T * B, U}), dhp2, true, false);
      Tensor db = concat({reshape(sum(dxp2, {0}), {1, 3 * U}), reshape(sum(dhp2, {0}), {1, 3 * U})}, 0);
      Tensor dx = transpose(reshape(matmul(dxp2, W, false, true), {T, B, I}), 0, 1).contiguous();
      return std::vector<Tensor>{dx, dh, dW, dR, db};
    });
  }
  return {sequence, state};
}

}  // namespace glimpse
