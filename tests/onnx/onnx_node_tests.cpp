// The ONNX backend node tests (Debian's libonnx-testdata), run on glimpse's ops.
//
// Each node test is a folder holding model.onnx (a graph of one operator) and test_data_set_N/
// with input_K.pb and output_K.pb. For the operator families glimpse covers, the node is mapped
// onto glimpse's public ops (tensor/ops.h) through the registry below, with only layout changes
// (NCHW <-> NHWC, ONNX weight layouts <-> Keras ones, reshapes) and attribute plumbing; the
// outputs are compared as onnx's backend runner does (rtol 1e-3, atol 1e-7). The harness never
// computes an operator's semantics itself: what glimpse cannot express is reported as
// unsupported with the missing feature named, so each new glimpse feature is a local change to
// one mapping.
//
// Usage: onnx_node_tests [REPORT_FILE]   (data folder: $GLIMPSE_ONNX_NODE_DATA, else Debian's)
// Exit status: 0 when no mapped test fails, 1 otherwise, 77 (a ctest skip) without the data.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tests/onnx/onnx_proto.h"

namespace fs = std::filesystem;
using namespace glimpse;
using onnx::AttributeProto;
using onnx::NodeProto;
using onnx::TensorProto;

namespace {

constexpr const char* kDefaultDataDir = "/usr/share/libonnx-testdata/data/node";
// onnx/backend/test/runner: np.testing.assert_allclose(ref, out, rtol=1e-3, atol=1e-7).
constexpr double kRtol = 1e-3, kAtol = 1e-7;

// Thrown by a mapping when glimpse cannot express what the node asks for.
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Shape shape_of(const TensorProto& t) { return Shape(t.dims.begin(), t.dims.end()); }

// ---- one node's inputs and attributes, as a mapping sees them -----------------------------------
class Node {
 public:
  Node(const NodeProto& proto, int64_t opset, const std::vector<const TensorProto*>& inputs)
      : proto_(proto), opset_(opset), inputs_(inputs) {}

  const std::string& op() const { return proto_.op_type; }
  int64_t opset() const { return opset_; }
  size_t num_inputs() const { return inputs_.size(); }
  bool has_input(size_t k) const { return k < inputs_.size() && inputs_[k] != nullptr; }
  // Outputs the graph asks for ("" marks an omitted optional output).
  bool wants_output(size_t k) const {
    return k < proto_.output.size() && !proto_.output[k].empty();
  }
  size_t num_outputs() const { return proto_.output.size(); }

  const TensorProto& raw(size_t k) const {
    if (!has_input(k)) throw std::runtime_error(op() + ": input " + std::to_string(k) + " is missing");
    return *inputs_[k];
  }

  // A float input as a glimpse tensor: float32 stays float32, float64 float64 (glimpse's CPU
  // kernels run in both); any other element type is arithmetic glimpse does not do.
  // Input k as a float tensor. `as` converts an integer input's values to that float dtype (only
  // where ONNX itself mixes types, e.g. Pow's exponent); otherwise integers are unsupported.
  Tensor data(size_t k, std::optional<DType> as = std::nullopt) const {
    const TensorProto& t = raw(k);
    const std::string what = op() + " input " + std::to_string(k);
    if (as && t.data_type != onnx::kFloat && t.data_type != onnx::kDouble) {
      std::vector<double> v = onnx::values_as_double(t, what);
      if (*as == DType::F64) return Tensor::from_vector(v, shape_of(t));
      return Tensor::from_vector(std::vector<float>(v.begin(), v.end()), shape_of(t));
    }
    if (t.data_type == onnx::kFloat) {
      std::vector<double> v = onnx::values_as_double(t, what);
      return Tensor::from_vector(std::vector<float>(v.begin(), v.end()), shape_of(t));
    }
    if (t.data_type == onnx::kDouble)
      return Tensor::from_vector(onnx::values_as_double(t, what), shape_of(t));
    throw Unsupported(std::string("dtype ") + onnx::data_type_name(t.data_type) +
                      " arithmetic not supported (glimpse computes in float32/float64)");
  }

  // An integer input (indices) as glimpse's int32 index tensor; values are passed through
  // unchanged (negative ones included) and only their range is checked against int32.
  Tensor indices(size_t k) const {
    const TensorProto& t = raw(k);
    std::vector<int64_t> v = onnx::values_as_int64(t, op() + " input " + std::to_string(k));
    std::vector<int32_t> narrow;
    for (int64_t x : v) {
      if (x < INT32_MIN || x > INT32_MAX)
        throw Unsupported("index " + std::to_string(x) + " does not fit glimpse's int32 indices");
      narrow.push_back(static_cast<int32_t>(x));
    }
    return Tensor::from_vector(narrow, shape_of(t));
  }

  // A small integer input that parameterises the op (a shape, axes).
  std::vector<int64_t> ints_input(size_t k) const {
    return onnx::values_as_int64(raw(k), op() + " input " + std::to_string(k));
  }
  std::vector<double> doubles_input(size_t k) const {
    return onnx::values_as_double(raw(k), op() + " input " + std::to_string(k));
  }

  const AttributeProto* attr(const std::string& name) const {
    for (const auto& a : proto_.attribute)
      if (a.name == name) return &a;
    return nullptr;
  }
  int64_t attr_int(const std::string& name, int64_t fallback) const {
    const AttributeProto* a = attr(name);
    return a ? a->i : fallback;
  }
  float attr_float(const std::string& name, float fallback) const {
    const AttributeProto* a = attr(name);
    return a ? a->f : fallback;
  }
  std::string attr_string(const std::string& name, const std::string& fallback) const {
    const AttributeProto* a = attr(name);
    return a ? a->s : fallback;
  }
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> fallback) const {
    const AttributeProto* a = attr(name);
    return a ? a->ints : fallback;
  }
  const NodeProto& proto() const { return proto_; }

 private:
  const NodeProto& proto_;
  int64_t opset_;
  std::vector<const TensorProto*> inputs_;
};

using Outputs = std::vector<Tensor>;

// ---- layout helpers (ONNX is channels-first, glimpse channels-last) --------------------------
// [N, C, d1, ..., dk] -> [N, d1, ..., dk, C] and back.
Tensor channels_last(const Tensor& x) {
  std::vector<int> order{0};
  for (int i = 2; i < x.rank(); ++i) order.push_back(i);
  order.push_back(1);
  return permute(x, order).contiguous();
}
Tensor channels_first(const Tensor& x) {
  std::vector<int> order{0, x.rank() - 1};
  for (int i = 1; i < x.rank() - 1; ++i) order.push_back(i);
  return permute(x, order).contiguous();
}

// ---- conv / pool attributes ----------------------------------------------------------------
// ONNX's window attributes, translated one for one into glimpse's Conv2dOptions/Pool2dOptions
// (tensor/conv_geometry.h): the padding rule or the explicit pads, strides, dilations, ceil_mode.
// No size arithmetic happens here; the ops resolve SAME_UPPER/SAME_LOWER and ceil_mode themselves.
struct Window2d {
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  Padding2d padding;
  bool ceil_mode = false;
};

Window2d window_2d(const Node& n, const std::vector<int64_t>& kernel, int spatial_rank) {
  const std::string& op = n.op();
  if (spatial_rank != 2)
    throw Unsupported(op + ": " + std::to_string(spatial_rank) + "-D windows not supported (2-D only)");
  std::vector<int64_t> strides = n.attr_ints("strides", {1, 1});
  std::vector<int64_t> dilations = n.attr_ints("dilations", {1, 1});
  const std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
  Window2d w;
  w.kh = static_cast<int>(kernel.at(0));
  w.kw = static_cast<int>(kernel.at(1));
  w.sh = static_cast<int>(strides.at(0));
  w.sw = static_cast<int>(strides.at(1));
  w.dh = static_cast<int>(dilations.at(0));
  w.dw = static_cast<int>(dilations.at(1));
  w.ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  if (auto_pad == "SAME_UPPER") w.padding = Padding2d::same();
  else if (auto_pad == "SAME_LOWER") w.padding = Padding2d::same_lower();
  else if (auto_pad == "VALID") w.padding = Padding2d::valid();
  else if (auto_pad == "NOTSET") w.padding = Padding2d::onnx(n.attr_ints("pads", {0, 0, 0, 0}));
  else throw std::runtime_error(op + ": unknown auto_pad '" + auto_pad + "'");
  return w;
}

Conv2dOptions conv_options(const Window2d& w, int groups) {
  Conv2dOptions o;
  o.stride_h = w.sh;
  o.stride_w = w.sw;
  o.padding = w.padding;
  o.dilation_h = w.dh;
  o.dilation_w = w.dw;
  o.groups = groups;
  return o;
}

Pool2dOptions pool_options(const Window2d& w, bool count_include_pad) {
  Pool2dOptions o;
  o.stride_h = w.sh;
  o.stride_w = w.sw;
  o.padding = w.padding;
  o.dilation_h = w.dh;
  o.dilation_w = w.dw;
  o.ceil_mode = w.ceil_mode;
  o.count_include_pad = count_include_pad;
  return o;
}

// Pooling runs on [N, H, W, C]; a 1-D ONNX pool [N, C, L] is the 2-D pool of a 1-high image.
Outputs pool(const Node& n, bool is_max) {
  const std::string& op = n.op();
  if (n.wants_output(1)) throw Unsupported(op + ": the Indices output (flat argmax positions) not supported");
  Tensor x = n.data(0);
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape", {});
  const int spatial = x.rank() - 2;
  const bool count_include_pad = !is_max && n.attr_int("count_include_pad", 0) != 0;
  if (n.attr("storage_order") && n.attr_int("storage_order", 0) != 0)
    throw Unsupported(op + ": storage_order 1 not supported");
  auto run = [&](const Tensor& xl, const Window2d& w) {
    const Pool2dOptions o = pool_options(w, count_include_pad);
    return is_max ? max_pool2d(xl, w.kh, w.kw, o) : avg_pool2d(xl, w.kh, w.kw, o);
  };
  if (spatial == 1) {
    // Lift to 2-D with a unit height; the attributes get the matching leading 1.
    std::vector<int64_t> k2{1, kernel.at(0)};
    NodeProto proto = n.proto();
    for (auto& a : proto.attribute) {
      if (a.name == "strides" || a.name == "dilations") a.ints.insert(a.ints.begin(), 1);
      if (a.name == "pads") {
        if (a.ints.size() != 2) throw std::runtime_error(op + ": pads of a 1-D pool need 2 values");
        a.ints = {0, a.ints[0], 0, a.ints[1]};
      }
    }
    Node node2(proto, n.opset(), {});
    return Outputs{squeeze(channels_first(run(channels_last(unsqueeze(x, 2)), window_2d(node2, k2, 2))), 2)};
  }
  return Outputs{channels_first(run(channels_last(x), window_2d(n, kernel, spatial)))};
}

// Max over a set of axes: move them last, merge them into one, take glimpse's max over it.
Tensor max_over_axes(const Tensor& x, std::vector<int> axes, bool keepdims) {
  std::vector<int> order;
  std::vector<bool> reduced(x.rank(), false);
  for (int a : axes) reduced.at(a) = true;
  Shape kept_shape, keep_dims_shape;
  for (int i = 0; i < x.rank(); ++i) {
    keep_dims_shape.push_back(reduced[i] ? 1 : x.shape()[i]);
    if (!reduced[i]) { order.push_back(i); kept_shape.push_back(x.shape()[i]); }
  }
  for (int i = 0; i < x.rank(); ++i)
    if (reduced[i]) order.push_back(i);
  Shape merged = kept_shape;
  merged.push_back(-1);
  Tensor y = max(reshape(permute(x, order).contiguous(), merged), -1);
  return reshape(y, keepdims ? keep_dims_shape : kept_shape);
}

// The reduction axes of a Reduce* node: the `axes` input (ReduceSum from opset 13, the others
// from 18) or attribute; empty means all axes.
std::vector<int> reduce_axes(const Node& n, const Tensor& x, bool& identity) {
  std::vector<int64_t> axes64;
  if (n.has_input(1)) axes64 = n.ints_input(1);
  else axes64 = n.attr_ints("axes", {});
  identity = axes64.empty() && n.attr_int("noop_with_empty_axes", 0) != 0;
  std::vector<int> axes;
  for (int64_t a : axes64) axes.push_back(static_cast<int>(a < 0 ? a + x.rank() : a));
  if (axes.empty())
    for (int i = 0; i < x.rank(); ++i) axes.push_back(i);
  return axes;
}

// A reduction from glimpse's sum/mean/max, with optional element-wise maps before and after:
// ONNX defines ReduceL1, ReduceL2, ReduceLogSum... as exactly these compositions.
using Map = std::function<Tensor(const Tensor&)>;
Map via(Tensor (*f)(const Tensor&)) { return f; }
std::function<Outputs(const Node&)> reduction(const char* kind, Map before = nullptr,
                                              Map after = nullptr) {
  const std::string k = kind;
  return [k, before, after](const Node& n) -> Outputs {
    Tensor x = n.data(0);
    bool identity = false;
    std::vector<int> axes = reduce_axes(n, x, identity);
    if (identity) return {x};
    const bool keepdims = n.attr_int("keepdims", 1) != 0;
    Tensor v = before ? before(x) : x;
    Tensor y;
    if (k == "sum") y = sum(v, axes, keepdims);
    else if (k == "mean") y = mean(v, axes, keepdims);
    else if (k == "prod") y = prod(v, axes, keepdims);
    else if (k == "max") y = max_over_axes(v, axes, keepdims);
    else if (k == "min") y = neg(max_over_axes(neg(v), axes, keepdims));
    return {after ? after(y) : y};
  };
}

Outputs binary(const Node& n, Tensor (*op)(const Tensor&, const Tensor&)) {
  return {op(n.data(0), n.data(1))};
}
std::function<Outputs(const Node&)> unary(Tensor (*op)(const Tensor&)) {
  return [op](const Node& n) -> Outputs { return {op(n.data(0))}; };
}

// ---- the operators -------------------------------------------------------------------------
Outputs map_conv(const Node& n) {
  Tensor x = n.data(0), w = n.data(1);
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape", {w.shape().begin() + 2, w.shape().end()});
  Window2d win = window_2d(n, kernel, x.rank() - 2);
  const Conv2dOptions options = conv_options(win, static_cast<int>(n.attr_int("group", 1)));
  // ONNX weights [COUT, CIN/group, KH, KW] -> Keras [KH, KW, CIN/group, COUT].
  Tensor kernel_hwio = permute(w, {2, 3, 1, 0}).contiguous();
  Tensor xl = channels_last(x);
  Tensor y = n.has_input(2) ? conv2d_bias_activation(xl, kernel_hwio, n.data(2), options, false)
                            : conv2d(xl, kernel_hwio, options);
  return {channels_first(y)};
}

Outputs map_global_pool(const Node& n, bool is_max) {
  Tensor x = n.data(0);
  std::vector<int> spatial;
  for (int i = 2; i < x.rank(); ++i) spatial.push_back(i);
  return {is_max ? max_over_axes(x, spatial, true) : mean(x, spatial, true)};
}

Outputs map_gemm(const Node& n) {
  Tensor y = matmul(n.data(0), n.data(1), n.attr_int("transA", 0) != 0, n.attr_int("transB", 0) != 0);
  const double alpha = n.attr_float("alpha", 1.0f), beta = n.attr_float("beta", 1.0f);
  if (alpha != 1.0) y = mul_scalar(y, alpha);
  if (n.has_input(2)) y = add(y, beta != 1.0 ? mul_scalar(n.data(2), beta) : n.data(2));
  return {y};
}

Outputs map_matmul(const Node& n) {
  Tensor a = n.data(0), b = n.data(1);
  if (a.rank() < 2 || b.rank() < 2)
    throw Unsupported("MatMul: 1-D operands (vector promotion) not supported");
  if (a.rank() == 2 && b.rank() == 2) return {matmul(a, b)};
  if (a.rank() != b.rank() || !std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin()))
    throw Unsupported("MatMul: broadcasting batch axes " + shape_str(a.shape()) + " x " +
                      shape_str(b.shape()) + " not supported");
  // Equal batch axes fold into glimpse's one batch axis.
  Shape out(a.shape().begin(), a.shape().end() - 1);
  out.push_back(b.shape().back());
  Tensor a3 = reshape(a, {-1, a.dim(-2), a.dim(-1)});
  Tensor b3 = reshape(b, {-1, b.dim(-2), b.dim(-1)});
  return {reshape(matmul(a3, b3), out)};
}

std::function<Outputs(const Node&)> map_softmax(bool log_space) {
  return [log_space](const Node& n) -> Outputs {
    Tensor x = n.data(0);
    // Before opset 13 the axis split the tensor into 2-D [outer, inner] and normalised over all
    // of inner: a reshape away from glimpse's single-axis softmax.
    const int64_t axis = n.attr_int("axis", n.opset() < 13 ? 1 : -1);
    if (n.opset() < 13) {
      const int64_t a = axis < 0 ? axis + x.rank() : axis;
      int64_t outer = 1;
      for (int64_t i = 0; i < a; ++i) outer *= x.shape()[i];
      Tensor y2 = log_space ? log_softmax(reshape(x, {outer, -1}), -1) : softmax(reshape(x, {outer, -1}), -1);
      return {reshape(y2, x.shape())};
    }
    return {log_space ? log_softmax(x, static_cast<int>(axis)) : softmax(x, static_cast<int>(axis))};
  };
}

Outputs map_layer_norm(const Node& n) {
  Tensor x = n.data(0), scale = n.data(1);
  int64_t axis = n.attr_int("axis", -1);
  if (axis < 0) axis += x.rank();
  // glimpse normalises over the last axis: merge the normalised axes [axis, rank) into one.
  Shape outer(x.shape().begin(), x.shape().begin() + axis);
  outer.push_back(-1);
  Tensor x2 = reshape(x, outer);
  const int64_t D = x2.dim(-1);
  if (scale.numel() != D)
    throw Unsupported("LayerNormalization: Scale of shape " + shape_str(scale.shape()) +
                      " broadcast over the normalised axes not supported");
  Tensor bias = n.has_input(2) ? reshape(n.data(2), {D}) : Tensor::zeros({D}, x.dtype());
  LayerNormStatistics stats;
  Tensor y = layer_norm(x2, reshape(scale, {D}), bias, n.attr_float("epsilon", 1e-5f), stats);
  // Mean and InvStdDev keep the input's rank: [d0, .., d(axis-1), 1, .., 1].
  Shape stat_shape(x.shape().begin(), x.shape().begin() + axis);
  stat_shape.resize(x.rank(), 1);
  return {reshape(y, x.shape()), reshape(stats.mean, stat_shape), reshape(stats.inv_std, stat_shape)};
}

Outputs map_batch_norm(const Node& n) {
  Tensor x = n.data(0);
  const bool training = n.attr_int("training_mode", 0) != 0;
  if (!training && n.num_outputs() > 1)
    throw Unsupported("BatchNormalization: running statistics outputs outside training mode");
  Tensor mean_ = n.data(3).clone(), var_ = n.data(4).clone();
  Tensor xl = x.rank() > 2 ? channels_last(x) : x;
  Tensor y = batch_norm(xl, n.data(1), n.data(2), mean_, var_, training,
                        n.attr_float("momentum", 0.9f), n.attr_float("epsilon", 1e-5f));
  Outputs out{x.rank() > 2 ? channels_first(y) : y};
  if (training) { out.push_back(mean_); out.push_back(var_); }
  return out;
}

Outputs map_gru(const Node& n) {
  const std::string direction = n.attr_string("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    throw std::runtime_error("GRU: unknown direction '" + direction + "'");
  if (n.attr("activations")) throw Unsupported("GRU: custom activations not supported (sigmoid/tanh only)");
  if (n.attr("clip")) throw Unsupported("GRU: cell clip not supported");
  // ONNX linear_before_reset=1 is Keras's reset_after=True; 0 (ONNX's default) is reset_after=False.
  const bool reset_after = n.attr_int("linear_before_reset", 0) != 0;
  const bool batch_first = n.attr_int("layout", 0) != 0;
  Tensor x = n.data(0), w = n.data(1), r = n.data(2);
  if (!batch_first) x = permute(x, {1, 0, 2}).contiguous();  // [T, B, I] -> [B, T, I]
  const int64_t B = x.dim(0), T = x.dim(1), H = r.dim(-1), D = w.dim(0);
  if (n.has_input(4)) {
    for (int64_t len : n.ints_input(4))
      if (len != T) throw Unsupported("GRU: sequence_lens shorter than the sequence not supported");
  }
  // Time reversed, for ONNX's outputs of the reverse direction: ONNX gives Y[t] at the position of
  // x[t], glimpse's go_backwards (like Keras's) in processing order.
  std::vector<int32_t> backwards(T);
  for (int64_t t = 0; t < T; ++t) backwards[t] = static_cast<int32_t>(T - 1 - t);
  const Tensor flip = Tensor::from_vector(backwards, {T});
  Tensor h0_all = n.has_input(5) ? n.data(5) : Tensor::zeros({D, B, H}, x.dtype());  // [D, B, H]
  std::vector<Tensor> ys, hs;  // per direction: [B, T, 1, H] and [1, B, H] (or [B, 1, H])
  for (int64_t d = 0; d < D; ++d) {
    // ONNX W [D, 3H, I], R [D, 3H, H], B [D, 6H] (input half, recurrent half), gates z, r, h: the
    // Keras layout transposed — kernel [I, 3H], recurrent [H, 3H]; bias [2, 3H] (reset_after) or
    // [3H] (the two halves add up before the gates either way when the reset comes first).
    Tensor kernel = transpose(reshape(slice(w, 0, d, d + 1), {3 * H, -1}), 0, 1).contiguous();
    Tensor recurrent = transpose(reshape(slice(r, 0, d, d + 1), {3 * H, H}), 0, 1).contiguous();
    Tensor b2 = n.has_input(3) ? reshape(slice(n.data(3), 0, d, d + 1), {2, 3 * H}) : Tensor::zeros({2, 3 * H}, x.dtype());
    Tensor bias = reset_after ? b2 : reshape(sum(b2, {0}), {3 * H});
    Tensor h0 = reshape(slice(h0_all, 0, d, d + 1), {B, H});
    GruOptions options;
    options.reset_after = reset_after;
    options.go_backwards = direction == "reverse" || (direction == "bidirectional" && d == 1);
    auto [seq, last] = gru_sequence(x, h0, kernel, recurrent, bias, options);
    ys.push_back(unsqueeze(options.go_backwards ? gather(seq, flip, 1) : seq, 2));
    hs.push_back(unsqueeze(last, batch_first ? 1 : 0));
  }
  // Y [T, D, B, H] (layout 0) or [B, T, D, H]; Y_h [D, B, H] or [B, D, H].
  Tensor y = concat(ys, 2);
  if (!batch_first) y = permute(y, {1, 2, 0, 3}).contiguous();
  return {y, concat(hs, batch_first ? 1 : 0)};
}

Outputs map_pow(const Node& n) {
  Tensor base = n.data(0);
  // An integer exponent for a float base (ONNX allows mixed types here; the result has the
  // base's type): its values, as the base's dtype — integers are exact in float up to 2^24.
  const TensorProto& e = n.raw(1);
  const bool int_exponent = e.data_type != onnx::kFloat && e.data_type != onnx::kDouble;
  Tensor exponent = n.data(1, int_exponent ? base.dtype() : std::optional<DType>());
  return {pow(base, exponent)};
}

Outputs map_reshape(const Node& n) {
  Tensor x = n.data(0);
  std::vector<int64_t> shape = n.ints_input(1);
  const bool allowzero = n.attr_int("allowzero", 0) != 0;
  // ONNX's spelling of a target shape, not a different reshape: without allowzero, a 0 entry
  // stands for the input's size on that axis.
  if (!allowzero)
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] == 0) {
        if (static_cast<int>(i) >= x.rank()) throw std::runtime_error("Reshape: 0 at axis " + std::to_string(i) + " past the input's rank");
        shape[i] = x.shape()[i];
      }
  return {reshape(x, Shape(shape.begin(), shape.end()))};
}

Outputs map_transpose(const Node& n) {
  Tensor x = n.data(0);
  std::vector<int> order;
  for (int64_t p : n.attr_ints("perm", {})) order.push_back(static_cast<int>(p));
  if (order.empty())  // default: reverse the axes
    for (int i = x.rank() - 1; i >= 0; --i) order.push_back(i);
  return {permute(x, order).contiguous()};
}

Outputs map_flatten(const Node& n) {
  Tensor x = n.data(0);
  int64_t axis = n.attr_int("axis", 1);
  if (axis < 0) axis += x.rank();
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  return {reshape(x, {outer, -1})};
}

std::vector<int64_t> axes_of(const Node& n) {
  return n.has_input(1) ? n.ints_input(1) : n.attr_ints("axes", {});
}

Outputs map_squeeze(const Node& n) {
  Tensor x = n.data(0);
  std::vector<int64_t> axes = axes_of(n);
  std::vector<int> normal;
  if (axes.empty()) {
    for (int i = 0; i < x.rank(); ++i)
      if (x.shape()[i] == 1) normal.push_back(i);
  }
  for (int64_t a : axes) normal.push_back(static_cast<int>(a < 0 ? a + x.rank() : a));
  std::sort(normal.rbegin(), normal.rend());  // from the last, so earlier axes keep their numbers
  for (int a : normal) x = squeeze(x, a);
  return {x};
}

Outputs map_unsqueeze(const Node& n) {
  Tensor x = n.data(0);
  std::vector<int64_t> axes = axes_of(n);
  const int out_rank = x.rank() + static_cast<int>(axes.size());
  std::vector<int> normal;
  for (int64_t a : axes) normal.push_back(static_cast<int>(a < 0 ? a + out_rank : a));
  std::sort(normal.begin(), normal.end());  // from the first, each axis numbered in the output
  for (int a : normal) x = unsqueeze(x, a);
  return {x};
}

Outputs map_concat(const Node& n) {
  std::vector<Tensor> xs;
  for (size_t k = 0; k < n.num_inputs(); ++k) xs.push_back(n.data(k));
  return {concat(xs, static_cast<int>(n.attr_int("axis", 0)))};
}

Outputs map_gather(const Node& n) {
  return {gather(n.data(0), n.indices(1), static_cast<int>(n.attr_int("axis", 0)))};
}

// ---- the registry --------------------------------------------------------------------------
struct OpMapping {
  const char* family;
  std::set<std::string> attributes;  // those the mapping reads; any other is unsupported
  std::function<Outputs(const Node&)> run;
};

const std::map<std::string, OpMapping>& registry() {
  static const std::set<std::string> kConvAttrs{"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"};
  static const std::set<std::string> kPoolAttrs{"auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                                "pads", "storage_order", "strides", "count_include_pad"};
  static const std::set<std::string> kReduceAttrs{"axes", "keepdims", "noop_with_empty_axes"};
  static const std::map<std::string, OpMapping> table{
      {"Conv", {"Conv", kConvAttrs, map_conv}},
      {"MaxPool", {"MaxPool", kPoolAttrs, [](const Node& n) { return pool(n, true); }}},
      {"AveragePool", {"AveragePool", kPoolAttrs, [](const Node& n) { return pool(n, false); }}},
      {"GlobalAveragePool", {"GlobalPool", {}, [](const Node& n) { return map_global_pool(n, false); }}},
      {"GlobalMaxPool", {"GlobalPool", {}, [](const Node& n) { return map_global_pool(n, true); }}},
      {"Gemm", {"Gemm", {"alpha", "beta", "transA", "transB"}, map_gemm}},
      {"MatMul", {"MatMul", {}, map_matmul}},
      {"Softmax", {"Softmax", {"axis"}, map_softmax(false)}},
      {"LogSoftmax", {"LogSoftmax", {"axis"}, map_softmax(true)}},
      {"LayerNormalization", {"LayerNormalization", {"axis", "epsilon", "stash_type"}, map_layer_norm}},
      {"BatchNormalization", {"BatchNormalization", {"epsilon", "momentum", "training_mode"}, map_batch_norm}},
      {"GRU", {"GRU", {"activations", "clip", "direction", "hidden_size", "layout", "linear_before_reset"}, map_gru}},
      {"Gather", {"Gather", {"axis"}, map_gather}},
      {"Concat", {"Concat", {"axis"}, map_concat}},
      {"Add", {"Elementwise", {}, [](const Node& n) { return binary(n, add); }}},
      {"Sub", {"Elementwise", {}, [](const Node& n) { return binary(n, sub); }}},
      {"Mul", {"Elementwise", {}, [](const Node& n) { return binary(n, mul); }}},
      {"Div", {"Elementwise", {}, [](const Node& n) { return binary(n, div); }}},
      {"Pow", {"Elementwise", {}, map_pow}},
      {"Relu", {"Elementwise", {}, unary(relu)}},
      {"Sigmoid", {"Elementwise", {}, unary(sigmoid)}},
      {"Tanh", {"Elementwise", {}, unary(glimpse::tanh)}},
      {"Exp", {"Elementwise", {}, unary(glimpse::exp)}},
      {"Log", {"Elementwise", {}, unary(glimpse::log)}},
      {"Sqrt", {"Elementwise", {}, unary(glimpse::sqrt)}},
      {"Neg", {"Elementwise", {}, unary(neg)}},
      {"Abs", {"Elementwise", {}, unary(glimpse::abs)}},
      {"ReduceSum", {"Reduction", kReduceAttrs, reduction("sum")}},
      {"ReduceMean", {"Reduction", kReduceAttrs, reduction("mean")}},
      {"ReduceMax", {"Reduction", kReduceAttrs, reduction("max")}},
      {"ReduceMin", {"Reduction", kReduceAttrs, reduction("min")}},
      {"ReduceSumSquare", {"Reduction", kReduceAttrs, reduction("sum", via(glimpse::square))}},
      {"ReduceL1", {"Reduction", kReduceAttrs, reduction("sum", via(glimpse::abs))}},
      {"ReduceL2", {"Reduction", kReduceAttrs, reduction("sum", via(glimpse::square), via(glimpse::sqrt))}},
      {"ReduceLogSum", {"Reduction", kReduceAttrs, reduction("sum", nullptr, via(glimpse::log))}},
      {"ReduceLogSumExp", {"Reduction", kReduceAttrs, reduction("sum", via(glimpse::exp), via(glimpse::log))}},
      {"ReduceProd", {"Reduction", kReduceAttrs, reduction("prod")}},
      {"Reshape", {"Shape", {"allowzero"}, map_reshape}},
      {"Transpose", {"Shape", {"perm"}, map_transpose}},
      {"Flatten", {"Shape", {"axis"}, map_flatten}},
      {"Squeeze", {"Shape", {"axes"}, map_squeeze}},
      {"Unsqueeze", {"Shape", {"axes"}, map_unsqueeze}},
  };
  return table;
}

// ---- running and comparing -----------------------------------------------------------------
enum class Verdict { Pass, Fail, Unsupported };

struct Result {
  std::string test, family;
  Verdict verdict;
  std::string detail;
};

// np.testing.assert_allclose(expected, actual, rtol, atol), NaNs equal to NaNs.
std::string compare(const TensorProto& expected, const Tensor& actual, const std::string& what) {
  const Shape want = shape_of(expected);
  if (actual.shape() != want)
    return what + ": shape " + shape_str(actual.shape()) + ", expected " + shape_str(want);
  std::vector<double> e = onnx::values_as_double(expected, what);
  std::vector<double> a;
  if (actual.dtype() == DType::I32) {
    for (int32_t v : actual.to_vector_i32()) a.push_back(v);
  } else {
    a = actual.to_vector_f64();
  }
  size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < e.size(); ++i) {
    if (std::isnan(e[i]) && std::isnan(a[i])) continue;
    const double err = std::abs(a[i] - e[i]), tol = kAtol + kRtol * std::abs(e[i]);
    if (!(err <= tol) && !(a[i] == e[i])) {
      ++bad;
      if (std::isnan(err) || err - tol > worst_excess) { worst_excess = err - tol; worst = i; }
    }
  }
  if (bad == 0) return "";
  std::ostringstream out;
  out << std::setprecision(9) << what << ": " << bad << " of " << e.size()
      << " values differ; worst at flat " << worst << ": got " << a[worst] << ", expected " << e[worst];
  return out.str();
}

Result run_test(const fs::path& dir) {
  Result result{dir.filename().string(), "", Verdict::Unsupported, ""};
  const onnx::ModelProto model = onnx::load_model((dir / "model.onnx").string());
  const onnx::GraphProto& graph = model.graph;
  if (graph.node.size() != 1) {
    result.detail = "multi-node graph";
    return result;
  }
  const NodeProto& node = graph.node[0];
  auto it = registry().find(node.op_type);
  if (it == registry().end() || !(node.domain.empty() || node.domain == "ai.onnx")) {
    result.detail = "not in scope";
    return result;
  }
  const OpMapping& mapping = it->second;
  result.family = mapping.family;
  int64_t opset = 0;
  for (const auto& id : model.opset_import)
    if (id.domain.empty() || id.domain == "ai.onnx") opset = id.version;

  std::vector<fs::path> sets;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(entry.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) throw std::runtime_error(dir.string() + ": no test_data_set_N folder");

  try {
    for (const auto& a : node.attribute)
      if (!mapping.attributes.count(a.name))
        throw Unsupported(node.op_type + ": attribute '" + a.name + "' not supported");
    for (const fs::path& set : sets) {
      // Graph inputs are fed from input_K.pb in order; initializers fill in the rest.
      std::map<std::string, TensorProto> values;
      for (const auto& init : graph.initializer) values[init.name] = init;
      size_t k = 0;
      for (const std::string& name : graph.input) {
        if (values.count(name)) continue;
        const fs::path file = set / ("input_" + std::to_string(k++) + ".pb");
        values[name] = onnx::load_tensor(file.string());
      }
      std::vector<const TensorProto*> inputs;
      for (const std::string& name : node.input) {
        if (name.empty()) { inputs.push_back(nullptr); continue; }
        auto v = values.find(name);
        if (v == values.end()) throw std::runtime_error(node.op_type + ": input '" + name + "' has no value");
        inputs.push_back(&v->second);
      }
      Outputs outputs;
      {
        NoGradGuard no_grad;
        outputs = mapping.run(Node(node, opset, inputs));
      }
      for (size_t o = 0; o < graph.output.size(); ++o) {
        auto pos = std::find(node.output.begin(), node.output.end(), graph.output[o]);
        const size_t index = static_cast<size_t>(pos - node.output.begin());
        if (pos == node.output.end() || index >= outputs.size())
          throw Unsupported(node.op_type + ": output " + std::to_string(index) + " ('" + graph.output[o] + "') not supported");
        const fs::path file = set / ("output_" + std::to_string(o) + ".pb");
        std::string diff = compare(onnx::load_tensor(file.string()), outputs[index],
                                   set.filename().string() + " output " + std::to_string(o));
        if (!diff.empty()) {
          result.verdict = Verdict::Fail;
          result.detail = diff;
          return result;
        }
      }
    }
    result.verdict = Verdict::Pass;
  } catch (const Unsupported& e) {
    result.verdict = Verdict::Unsupported;
    result.detail = e.what();
  } catch (const std::exception& e) {
    result.verdict = Verdict::Fail;
    result.detail = std::string("exception: ") + e.what();
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("GLIMPSE_ONNX_NODE_DATA");
  const fs::path data_dir = env && *env ? env : kDefaultDataDir;
  if (!fs::is_directory(data_dir)) {
    std::cout << "SKIP: ONNX node tests not found at " << data_dir.string()
              << " (Debian: apt-get install libonnx-testdata, see scripts/install-deps.sh)\n";
    return 77;
  }
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(data_dir))
    if (entry.is_directory() && fs::exists(entry.path() / "model.onnx")) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());

  struct Counts { int pass = 0, fail = 0, unsupported = 0; };
  std::map<std::string, Counts> counts;
  std::vector<Result> listed;
  int out_of_scope = 0, multi_node = 0;
  for (const fs::path& dir : dirs) {
    Result r;
    try {
      r = run_test(dir);
    } catch (const std::exception& e) {
      // A model that cannot even be read is a failure of the harness or of the data: report it.
      r = Result{dir.filename().string(), "(unreadable)", Verdict::Fail, e.what()};
    }
    if (r.family.empty()) {
      (r.detail == "multi-node graph" ? multi_node : out_of_scope)++;
      continue;
    }
    Counts& c = counts[r.family];
    if (r.verdict == Verdict::Pass) ++c.pass;
    else if (r.verdict == Verdict::Fail) ++c.fail;
    else ++c.unsupported;
    if (r.verdict != Verdict::Pass) listed.push_back(r);
  }

  std::ostringstream report;
  report << "ONNX backend node tests from " << data_dir.string() << " (rtol " << kRtol << ", atol "
         << kAtol << ")\n\n";
  report << std::left << std::setw(20) << "family" << std::right << std::setw(6) << "pass"
         << std::setw(6) << "fail" << std::setw(13) << "unsupported" << "\n";
  Counts total;
  for (const auto& [family, c] : counts) {
    report << std::left << std::setw(20) << family << std::right << std::setw(6) << c.pass
           << std::setw(6) << c.fail << std::setw(13) << c.unsupported << "\n";
    total.pass += c.pass; total.fail += c.fail; total.unsupported += c.unsupported;
  }
  report << std::left << std::setw(20) << "total" << std::right << std::setw(6) << total.pass
         << std::setw(6) << total.fail << std::setw(13) << total.unsupported << "\n\n";
  for (const Result& r : listed)
    report << (r.verdict == Verdict::Fail ? "FAIL        " : "unsupported ") << r.test << ": "
           << r.detail << "\n";
  report << "\nNot in scope: " << out_of_scope << " single-node tests of other operators, "
         << multi_node << " multi-node graphs (function expansions and the like).\n";
  std::cout << report.str();
  if (argc > 1) {
    std::ofstream file(argv[1]);
    file << report.str();
    if (!file) std::cerr << "cannot write the report to " << argv[1] << "\n";
    else std::cout << "report written to " << argv[1] << "\n";
  }
  return total.fail == 0 ? 0 : 1;
}
