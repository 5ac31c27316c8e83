// GRU with Keras semantics (gate order z, r, h): kernel (in, 3u) glorot_uniform, recurrent_kernel
// (u, 3u) orthogonal, bias zeros — (2, 3u) with reset_after (row 0 for the input projection, row 1
// for the recurrent one), (3u) with the reset gate before the recurrent matmul. The sequence runs
// as ONE fused op (tensor/ops_gru.cpp); docs/layers.md has the equations.
//
// ONNX's GRU maps onto these with transposes and reshapes only (its gates are z, r, h too):
//   W [dirs, 3H, I] -> kernel = W[d]^T;  R [dirs, 3H, H] -> recurrent_kernel = R[d]^T;
//   B [dirs, 6H] = [Wb | Rb]: linear_before_reset=1 -> reset_after, bias = reshape(B[d], {2, 3H});
//   linear_before_reset=0 -> reset_after=false, bias = Wb + Rb (the two only ever appear summed).
//   direction "forward" -> go_backwards=false; "reverse" -> go_backwards=true, and ONNX's Y is in
//   input order, i.e. this sequence reversed along time (Y_h is the final state either way);
//   "bidirectional" -> Bidirectional (d = 0 forward_layer, d = 1 backward_layer; initial_h[d] the
//   two initial states). ONNX stacks the directions (Y [T, 2, B, H]) where Keras merges them, so
//   take BidirectionalOutput's forward_sequence and backward_sequence (both in input order).
//   ONNX's layout=0 is time-major: transpose X and Y between [T, B, .] and [B, T, .].
#pragma once
#include <memory>

#include "nn/module.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace glimpse::nn {

class GRU : public Module {
 public:
  // options: reset_after (default true, Keras's default) and go_backwards (default false).
  GRU(const std::string& name, int64_t input_dim, int64_t units, Generator& gen,
      GruOptions options = {});
  std::string type_name() const override { return "GRU"; }

  // x [B, T, in], optional initial state [B, units] (zeros when undefined)
  // -> (sequence [B, T, units], final state [B, units]): return_sequences + return_state.
  // With go_backwards the sequence is in processing order (reversed, as Keras returns it), and
  // the final state (= sequence[:, T-1]) is the one after reading x[:, 0].
  // One step of inference is forward() on a one-step sequence with the carried state (what the
  // captioner's decoding loop does).
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& initial_state = Tensor()) const;

  Tensor kernel, recurrent_kernel, bias;
  int64_t input_dim, units;
  GruOptions options;
};

// keras.layers.Bidirectional(GRU(units, ...)): a forward GRU and a go_backwards copy named
// "forward_<layer>" and "backward_<layer>" as Keras names them, so the weights of a Keras file's
// ".../forward_gru/gru_cell/kernel" go to "<name>/forward_gru/kernel" and so on.
enum class MergeMode { Concat, Sum, Mul, Ave };
const char* merge_mode_name(MergeMode mode);

struct BidirectionalOutput {
  // Keras's return_sequences=True output: merge(forward, backward re-reversed) [B, T, 2U or U].
  Tensor sequence;
  // Keras's return_sequences=False output: merge(forward final state, backward final state).
  Tensor last;
  // Keras's return_state extras, in its order: forward state, then backward state [B, U].
  Tensor forward_state, backward_state;
  // The unmerged sequences [B, T, U], the backward one flipped back to input order as Keras does
  // (with default options both are then in input order).
  Tensor forward_sequence, backward_sequence;
};

class Bidirectional : public Module {
 public:
  // gru_options applies to the forward layer; the backward layer gets the opposite go_backwards
  // (Keras copies the layer and flips that flag). layer_name is the wrapped GRU's Keras name.
  Bidirectional(const std::string& name, int64_t input_dim, int64_t units, Generator& gen,
                MergeMode merge_mode = MergeMode::Concat, GruOptions gru_options = {},
                const std::string& layer_name = "gru");
  std::string type_name() const override { return "Bidirectional"; }

  // x [B, T, in]; initial states [B, units] each, both or neither (Keras splits its
  // initial_state list in half: forward's, then backward's).
  BidirectionalOutput forward(const Tensor& x, const Tensor& forward_initial_state = Tensor(),
                              const Tensor& backward_initial_state = Tensor()) const;

  std::unique_ptr<GRU> forward_layer, backward_layer;
  MergeMode merge_mode;
};

}  // namespace glimpse::nn
