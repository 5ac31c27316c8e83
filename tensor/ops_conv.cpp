// Convolution (im2col + GEMM, NHWC, Keras kernel layout) and 2D pooling; the padding arithmetic is
// in conv_geometry.cpp.

#include <algorithm>

#include "tensor/cpu/packed_gemm.h"
#include "tensor/op_helpers.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"
#include "tensor/profiler.h"

namespace glimpse {

using detail::check_float;
using detail::check_same_dtype_device;
using detail::dispatch_float;
using detail::fail;
using detail::kernels_for;

namespace {

// The window's shape and placement, as the options give them.
struct Window {
  int64_t kh, kw;
  int sh, sw;
  int dh = 1, dw = 1;
  const Padding2d& padding;
  bool ceil_mode = false;
};

Conv2dGeometry make_geometry(const char* op, const Tensor& x, const Window& win) {
  check_float(op, x, "input");
  if (x.rank() != 4) fail(op, "input must be NHWC (rank 4), got shape ", shape_str(x.shape()));
  if (win.sh <= 0 || win.sw <= 0) fail(op, "strides must be positive, got ", win.sh, "x", win.sw);
  if (win.kh <= 0 || win.kw <= 0) fail(op, "window must be positive, got ", win.kh, "x", win.kw);
  if (win.dh <= 0 || win.dw <= 0)
    fail(op, "dilation must be positive, got ", win.dh, "x", win.dw);
  const Padding2d& p = win.padding;
  if (p.top < 0 || p.bottom < 0 || p.left < 0 || p.right < 0)
    fail(op, "padding must not be negative, got ", p.str());
  Conv2dGeometry g{};
  g.N = x.shape()[0];
  g.H = x.shape()[1];
  g.W = x.shape()[2];
  g.C = x.shape()[3];
  g.KH = win.kh;
  g.KW = win.kw;
  g.SH = win.sh;
  g.SW = win.sw;
  g.DH = win.dh;
  g.DW = win.dw;
  const PaddingPlan ph = plan_padding(g.H, g.KH, g.SH, g.DH, p, 0, win.ceil_mode);
  const PaddingPlan pw = plan_padding(g.W, g.KW, g.SW, g.DW, p, 1, win.ceil_mode);
  g.OH = ph.out;
  g.OW = pw.out;
  g.pad_top = ph.pad_before;
  g.pad_left = pw.pad_before;
  g.pad_bottom = ph.pad_after;
  g.pad_right = pw.pad_after;
  if (g.OH <= 0 || g.OW <= 0)
    fail(op, "a ", win.kh, "x", win.kw, " window",
         win.dh != 1 || win.dw != 1
             ? " dilated " + std::to_string(win.dh) + "x" + std::to_string(win.dw)
             : std::string(),
         " with ", p.str(), " padding does not fit input ", shape_str(x.shape()));
  return g;
}

// x itself is the patch matrix: a 1x1 window, stride 1 and nothing padded.
bool is_pointwise(const Conv2dGeometry& g) {
  return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.OH == g.H && g.OW == g.W &&
         g.pad_top == 0 && g.pad_left == 0;
}

// The profiler's row label of a convolution or pooling: "1x17x17x1088 k1x1/1 -> 192".
std::string describe(const Conv2dGeometry& g, int64_t out_channels) {
  std::string stride = std::to_string(g.SH);
  if (g.SW != g.SH) stride += "x" + std::to_string(g.SW);
  return std::to_string(g.N) + "x" + std::to_string(g.H) + "x" + std::to_string(g.W) + "x" +
         std::to_string(g.C) + " k" + std::to_string(g.KH) + "x" + std::to_string(g.KW) + "/" +
         stride + " -> " + std::to_string(out_channels);
}

double conv_flops(const Conv2dGeometry& g, int64_t out_channels) {
  return 2.0 * static_cast<double>(g.N * g.OH * g.OW) * static_cast<double>(out_channels) *
         static_cast<double>(g.KH * g.KW * g.C);
}

// ---- panels: im2col + GEMM a slice of output rows at a time -----------------------------------------
//
// The patch matrix of a whole batch is large (199 MB for the 147x147x32 -> 64 stem conv at batch
// 8): built at once, it falls out of every cache before the GEMM reads it back, and a fresh block
// that size is page-faulted in on every call. So on the CPU the output pixels are cut into panels
// whose patch matrix is a few MB; each panel's patches are built in one reused buffer and
// multiplied straight into the output's rows. On the GPU the whole batch is one panel: there a
// bigger GEMM is simply faster.

// About this many bytes of patches per panel: a few MB fits the L3 cache next to the kernel, and
// is big enough that packing the kernel once per panel costs little against the panel's GEMM.
constexpr int64_t kPanelBytes = int64_t(2) << 20;
// Never fewer output pixels than this per panel (a GEMM with few rows runs below peak)...
constexpr int64_t kMinPanelPixels = 256;
// ...except that a conv too small for that, which would be one panel, is still split between the
// threads down to this many pixels each: at batch 1 the 17x17 and 8x8 convs at the end of
// Inception-ResNet-v2 are most of the work, and there one single-threaded GEMM per thread on its
// share of the rows ran faster than one GEMM threaded inside by OpenBLAS, or than splitting the
// output channels between the threads (bench/RESULTS.md, "batch 1 on two threads").
constexpr int64_t kMinSharedPanelPixels = 32;

struct PanelPlan {
  // Rows of the planned geometry per panel (the last panel may have fewer): (n, oh) output rows,
  // or output pixels when the forward plans one pixel per row.
  int64_t rows_per_panel;
  int64_t num_panels;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Panels of at most about kPanelBytes of patches (when it builds any), and, when
// `workers` threads will share them and there is enough work, a multiple of `workers` panels so
// that every thread gets the same share; with less work, at most one panel per thread of at least
// kMinSharedPanelPixels. Panels are equal, not full ones plus a small remainder.
// (So the partition may depend on the thread count; as with Eigen's own threaded GEMM before, the
// last bits of a result may then differ between thread counts.)
PanelPlan plan_panels(const Conv2dGeometry& g, size_t element_size, Device device, int workers,
                      bool builds_patches) {
  const int64_t total_rows = g.N * g.OH;
  if (device != Device::CPU) return {total_rows, 1};
  const int64_t total_pixels = total_rows * g.OW;
  int64_t panels = 1;
  if (builds_patches) {
    const int64_t patch_row_bytes = g.KH * g.KW * g.C * static_cast<int64_t>(element_size);
    const int64_t pixels = std::max<int64_t>(kMinPanelPixels,
                                             kPanelBytes / std::max<int64_t>(1, patch_row_bytes));
    panels = ceil_div(total_pixels, pixels);
  }
  if (workers > 1 && total_pixels >= workers * kMinPanelPixels) {
    panels = ceil_div(panels, workers) * workers;
  } else if (workers > 1 && panels == 1) {
    panels = std::min<int64_t>(workers, total_pixels / kMinSharedPanelPixels);
  }
  panels = std::max<int64_t>(panels, 1);
  panels = std::min(panels, total_rows);
  const int64_t rows = ceil_div(total_rows, panels);
  return {rows, ceil_div(total_rows, rows)};
}

// A piece of a panel that the im2col/col2im kernels can take as one geometry: whole images, or a
// run of output rows of one image. For the latter the input is re-based at the first input row the
// windows touch, so the piece's own padding is never negative and its input ends at the last row
// they touch.
struct PanelPiece {
  Conv2dGeometry g;
  int64_t input_offset;  // elements from the start of x (or gx) to the piece's input
  int64_t first_pixel;   // the piece's first output pixel, counted from the panel's start
};

// Calls fn(piece) for the pieces covering output rows [row_begin, row_end) of the (n, oh) rows.
template <class Fn>
void for_each_piece(const Conv2dGeometry& g, int64_t row_begin, int64_t row_end, Fn&& fn) {
  const int64_t image_size = g.H * g.W * g.C;
  int64_t row = row_begin;
  while (row < row_end) {
    const int64_t n = row / g.OH, oh = row % g.OH;
    PanelPiece piece{g, 0, (row - row_begin) * g.OW};
    if (oh == 0 && row_end - row >= g.OH) {  // whole images
      const int64_t images = (row_end - row) / g.OH;
      piece.g.N = images;
      piece.input_offset = n * image_size;
      row += images * g.OH;
    } else {  // output rows [oh, oh_end) of image n
      const int64_t oh_end = std::min(g.OH, oh + (row_end - row));
      // Clamped to the input: with explicit padding wider than the window, whole rows of
      // windows may lie in the padding below it (then the piece has no input rows at all).
      const int64_t first_input_row = std::clamp<int64_t>(oh * g.SH - g.pad_top, 0, g.H);
      const int64_t end_input_row =
          std::min(g.H, (oh_end - 1) * g.SH - g.pad_top + (g.KH - 1) * g.DH + 1);
      piece.g.N = 1;
      piece.g.OH = oh_end - oh;
      piece.g.pad_top = g.pad_top - oh * g.SH + first_input_row;
      piece.g.H = std::max<int64_t>(0, end_input_row - first_input_row);
      piece.input_offset = n * image_size + first_input_row * g.W * g.C;
      row += oh_end - oh;
    }
    fn(piece);
  }
}

// Writes the patch rows of output rows [row_begin, row_end) into cols (one row per output pixel).
template <class T>
void im2col_rows(const Kernels<T>& k, const T* x, T* cols, const Conv2dGeometry& g,
                 int64_t row_begin, int64_t row_end) {
  const int64_t depth = g.KH * g.KW * g.C;
  for_each_piece(g, row_begin, row_end, [&](const PanelPiece& p) {
    k.im2col(x + p.input_offset, cols + p.first_pixel * depth, p.g);
  });
}

// Adds the patch-row gradients of output rows [row_begin, row_end) onto gx.
template <class T>
void col2im_rows(const Kernels<T>& k, const T* dcols, T* gx, const Conv2dGeometry& g,
                 int64_t row_begin, int64_t row_end) {
  const int64_t depth = g.KH * g.KW * g.C;
  for_each_piece(g, row_begin, row_end, [&](const PanelPiece& p) {
    k.col2im(dcols + p.first_pixel * depth, gx + p.input_offset, p.g);
  });
}

// The inference epilogue of conv2d_bias_activation: what the GEMM of each panel starts from
// (residual + bias, rather than zeros: adding them costs one pass over a panel still in cache) and
// the ReLU applied while the panel is hot.
// With a packed kernel (CPU), the packed GEMM applies the same epilogue to each register tile.
template <class T>
struct Epilogue {
  const T* bias = nullptr;      // [COUT] or null
  const T* residual = nullptr;  // [N*OH*OW, COUT] like the output, or null
  bool relu = false;
  const T* packed_kernel = nullptr;  // the kernel in cpu::pack_b's layout (then w is unused)
};

// out[N*OH*OW, COUT] = patches(x) W (+ bias, ReLU), panel by panel.
//
// On the CPU, several panels run in parallel, one per thread, each thread with its own patch
// buffer and a single-threaded GEMM: one fork/join per convolution rather than two per panel (the
// im2col loop and the GEMM), and a thread descheduled by another process on a shared machine
// delays only its own panel while the others take the rest (dynamic schedule). A pointwise conv
// needs no patches: its panels are row ranges of x itself. A single panel (a tiny conv, or one
// thread) is one GEMM parallelised inside. Which thread runs a panel changes nothing in the result.
template <class T>
void conv_forward(const Kernels<T>& k, const T* x, const T* w, T* out, const Conv2dGeometry& g,
                  int64_t COUT, Device device, DType dtype, const Epilogue<T>& epilogue) {
  const int64_t depth = g.KH * g.KW * g.C;
  const bool pointwise = is_pointwise(g);
  // With a packed kernel, a windowed conv reads its input in place (cpu::conv_packed) when it has
  // enough channels; otherwise it builds patches (im2col).
  const bool in_place = !pointwise && epilogue.packed_kernel && cpu::conv_packed_supported(g);
  const bool builds_patches = !pointwise && !in_place;
  const int threads = device == Device::CPU ? parallel::num_threads() : 1;
  // Panels are planned in output pixels (as if one pixel per row), so that they may end inside an
  // image row and threads get equal shares: 17x17 = 289 pixels at batch 1 is 145 + 144, where
  // whole rows would be 9 + 8 (153 + 136). A windowed conv's panel builds the patches of the
  // image rows its pixels touch and multiplies only its own pixels' patches. Windowed convs
  // through the general GEMM (training, and the unfolded forward) keep whole image rows: how a
  // GEMM's rows are split changes the last bits of OpenBLAS's results, and the shapes demo's
  // scores were validated with this split (a pixel split there moved two test scenes).
  const int64_t total_pixels = g.N * g.OH * g.OW;
  const bool by_pixels = !builds_patches || epilogue.packed_kernel;
  Conv2dGeometry rows = g;
  if (by_pixels) {
    rows.N = 1;
    rows.OH = total_pixels;
    rows.OW = 1;
  }
  PanelPlan plan = plan_panels(rows, sizeof(T), device, threads, builds_patches);
  plan.rows_per_panel *= rows.OW;  // from here on, in pixels
  // A convolution that the plan shares between the threads one panel each, with fewer output
  // pixels than channels (at batch 1: the 8x8 ones, and the 17x17 ones up to 1088 channels), is
  // rather one panel whose output channels the threads share, when its kernel is packed: each
  // thread then reads all the patches, which are the smaller operand, and half the kernel.
  int gemm_threads = 1;
  if (epilogue.packed_kernel && threads > 1 && plan.num_panels <= threads &&
      total_pixels < COUT) {
    plan = {total_pixels, 1};
    gemm_threads = threads;
  }
  auto run_panel = [&](int64_t p, T* patches) {
    const int64_t first_pixel = p * plan.rows_per_panel;
    const int64_t pixels = std::min(total_pixels - first_pixel, plan.rows_per_panel);
    T* y = out + first_pixel * COUT;
    const T* residual = epilogue.residual ? epilogue.residual + first_pixel * COUT : nullptr;
    if (in_place) {
      cpu::conv_packed(x, g, first_pixel, pixels, COUT, epilogue.packed_kernel, y, COUT,
                       epilogue.bias, residual, epilogue.relu, gemm_threads);
      return;
    }
    const T* cols = x + first_pixel * depth;  // a pointwise conv's patches are x itself
    if (builds_patches) {
      const int64_t row_begin = first_pixel / g.OW;
      const int64_t row_end = ceil_div(first_pixel + pixels, g.OW);
      im2col_rows(k, x, patches, g, row_begin, row_end);
      cols = patches + (first_pixel - row_begin * g.OW) * depth;
    }
    if (epilogue.packed_kernel) {
      cpu::gemm_packed_b(pixels, COUT, depth, cols, depth, epilogue.packed_kernel, y, COUT,
                         epilogue.bias, residual, epilogue.relu, gemm_threads);
      return;
    }
    if (residual && epilogue.bias) {
      BroadcastLayout rows_plus_bias;
      rows_plus_bias.rank = 2;
      rows_plus_bias.shape[0] = pixels;
      rows_plus_bias.shape[1] = COUT;
      rows_plus_bias.a_strides[0] = COUT;
      rows_plus_bias.a_strides[1] = 1;
      rows_plus_bias.b_strides[0] = 0;
      rows_plus_bias.b_strides[1] = 1;
      k.binary(BinaryOp::Add, residual, epilogue.bias, y, rows_plus_bias);
    } else if (residual) {
      k.copy_2d(residual, COUT, y, COUT, pixels, COUT);
    } else if (epilogue.bias) {
      k.copy_2d(epilogue.bias, 0, y, COUT, pixels, COUT);  // the bias row, repeated
    }
    const bool preloaded = residual || epilogue.bias;
    k.gemm(false, false, pixels, COUT, depth, T(1), cols, depth, w, COUT, preloaded ? T(1) : T(0),
           y, COUT);
    if (epilogue.relu) k.unary(UnaryOp::Relu, y, y, pixels * COUT, T(0));
  };
  // A panel's pixels touch at most this many (n, oh) output rows.
  const int64_t panel_rows =
      std::min(g.N * g.OH, ceil_div(plan.rows_per_panel, g.OW) + (by_pixels ? 1 : 0));
  const int64_t panel_elements = builds_patches ? panel_rows * g.OW * depth : 0;
  if (plan.num_panels == 1 || threads == 1) {
    Tensor buffer = Tensor::empty({panel_elements}, dtype, device);
    for (int64_t p = 0; p < plan.num_panels; ++p) run_panel(p, buffer.data<T>());
    return;
  }
  // One patch buffer per pool slot (a slot is never used by two panels at once).
  Tensor buffers = Tensor::empty({threads, panel_elements}, dtype, device);
  T* base = buffers.data<T>();
  parallel::run_tasks(plan.num_panels,
                      [&](int64_t p, int slot) { run_panel(p, base + slot * panel_elements); });
}

struct ConvArgs {
  Conv2dGeometry g;
  int64_t COUT;
};

// `kernel` holds the weights: the kernel itself, or its packed form. For a grouped convolution
// the geometry is one group's: C is the channels of one group, and COUT all the output channels.
ConvArgs check_conv(const char* name, const Tensor& x, const Tensor& kernel,
                    const Shape& kernel_shape, const Conv2dOptions& o) {
  check_float(name, kernel, "kernel");
  if (kernel_shape.size() != 4)
    fail(name, "kernel must be (kh, kw, cin / groups, cout), got shape ", shape_str(kernel_shape));
  if (o.groups <= 0) fail(name, "groups must be positive, got ", o.groups);
  Conv2dGeometry g = make_geometry(
      name, x,
      Window{kernel_shape[0], kernel_shape[1], o.stride_h, o.stride_w, o.dilation_h, o.dilation_w,
             o.padding});
  check_same_dtype_device(name, x, kernel);
  if (g.C % o.groups != 0)
    fail(name, "the input's ", g.C, " channels (", shape_str(x.shape()),
         ") do not split into ", o.groups, " groups");
  if (kernel_shape[3] % o.groups != 0)
    fail(name, "kernel ", shape_str(kernel_shape), " has ", kernel_shape[3],
         " output channels, which do not split into ", o.groups, " groups");
  if (kernel_shape[2] * o.groups != g.C) {
    if (o.groups == 1)
      fail(name, "kernel ", shape_str(kernel_shape), " expects ", kernel_shape[2],
           " input channels but the input ", shape_str(x.shape()), " has ", g.C);
    fail(name, "kernel ", shape_str(kernel_shape), " expects ", kernel_shape[2],
         " input channels per group, but the input ", shape_str(x.shape()), " has ", g.C,
         " channels in ", o.groups, " groups");
  }
  g.C = kernel_shape[2];
  return {g, kernel_shape[3]};
}

ConvArgs check_conv(const char* name, const Tensor& x, const Tensor& kernel,
                    const Conv2dOptions& options) {
  return check_conv(name, x, kernel, kernel.shape(), options);
}

Conv2dOptions conv_options(int sh, int sw, const Padding2d& padding) {
  Conv2dOptions o;
  o.stride_h = sh;
  o.stride_w = sw;
  o.padding = padding;
  return o;
}

void check_bias_residual(const char* name, const ConvArgs& args, const Tensor& x,
                         const Tensor& bias, const Tensor& residual, const Shape& kernel_shape) {
  check_float(name, bias, "bias");
  check_same_dtype_device(name, x, bias);
  if (bias.rank() != 1 || bias.shape()[0] != args.COUT)
    fail(name, "bias must be [", args.COUT, "] for kernel ", shape_str(kernel_shape), ", got ",
         shape_str(bias.shape()));
  if (residual.defined()) {
    const Shape out_shape{args.g.N, args.g.OH, args.g.OW, args.COUT};
    check_float(name, residual, "residual");
    check_same_dtype_device(name, x, residual);
    if (residual.shape() != out_shape)
      fail(name, "residual ", shape_str(residual.shape()), " must have the output's shape ",
           shape_str(out_shape));
  }
}

// The fused forward, with the kernel as it is (`w`) or packed (`packed`, then w is null).
Tensor fused_conv_forward(const char* name, const ConvArgs& args, const Tensor& x_in,
                          const Tensor& w, const Tensor& packed, const Tensor& bias, bool relu_after,
                          const Tensor& residual) {
  Tensor x = x_in.contiguous();
  Tensor b = bias.contiguous();
  Tensor r = residual.defined() ? residual.contiguous() : Tensor();
  Tensor out = Tensor::empty({args.g.N, args.g.OH, args.g.OW, args.COUT}, x.dtype(), x.device());
  if (out.numel() > 0) {
    profiler::Scope scope(name, [&] { return describe(args.g, args.COUT); },
                          conv_flops(args.g, args.COUT));
    dispatch_float(name, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Epilogue<T> epilogue{b.data<T>(), r.defined() ? r.data<T>() : nullptr, relu_after};
      if (packed.defined()) epilogue.packed_kernel = packed.data<T>();
      conv_forward<T>(kernels_for<T>(x.device()), x.data<T>(), w.defined() ? w.data<T>() : nullptr,
                      out.data<T>(), args.g, args.COUT, x.device(), x.dtype(), epilogue);
    });
  }
  return out;
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& kernel, int sh, int sw, const Padding2d& padding) {
  return conv2d(x_in, kernel, conv_options(sh, sw, padding));
}

Tensor conv2d(const Tensor& x_in, const Tensor& kernel, const Conv2dOptions& options) {
  GLIMPSE_OP_SCOPE("conv2d", conv2d, x_in, kernel, options);
  const char* name = "conv2d";
  const ConvArgs args = check_conv(name, x_in, kernel, options);
  if (options.groups > 1) {
    // One convolution per group on its slice of the channels; slice and concat carry the
    // gradients back to x and the kernel.
    const int64_t cin = args.g.C, cout = args.COUT / options.groups;
    Conv2dOptions one = options;
    one.groups = 1;
    std::vector<Tensor> outputs;
    outputs.reserve(static_cast<size_t>(options.groups));
    for (int64_t group = 0; group < options.groups; ++group) {
      outputs.push_back(conv2d(slice(x_in, 3, group * cin, (group + 1) * cin),
                               slice(kernel, 3, group * cout, (group + 1) * cout), one));
    }
    return concat(outputs, 3);
  }
  const Conv2dGeometry g = args.g;
  const int64_t COUT = args.COUT;
  const int64_t rows = g.N * g.OH * g.OW, depth = g.KH * g.KW * g.C;
  Tensor x = x_in.contiguous().detach();
  Tensor w = kernel.contiguous().detach();
  Tensor out = Tensor::empty({g.N, g.OH, g.OW, COUT}, x.dtype(), x.device());
  if (out.numel() > 0) {
    profiler::Scope scope(name, [&] { return describe(g, COUT); }, conv_flops(g, COUT));
    dispatch_float(name, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      conv_forward<T>(kernels_for<T>(x.device()), x.data<T>(), w.data<T>(), out.data<T>(), g, COUT,
                      x.device(), x.dtype(), Epilogue<T>{});
    });
  }
  if (any_requires_grad({x_in, kernel})) {
    bool need_x = x_in.requires_grad(), need_w = kernel.requires_grad();
    record_node(name, {x_in, kernel}, out, [=](const std::vector<Tensor>& grads) {
      Tensor gy = grads[0].contiguous();
      Tensor gx, gw;
      profiler::add_flops(conv_flops(g, COUT) * ((need_x ? 1 : 0) + (need_w ? 1 : 0)));
      dispatch_float(name, x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const Kernels<T>& k = kernels_for<T>(x.device());
        if (is_pointwise(g)) {  // x is the patch matrix: two plain GEMMs
          if (need_w) {
            gw = Tensor::empty(w.shape(), w.dtype(), w.device());
            k.gemm(true, false, depth, COUT, rows, T(1), x.data<T>(), depth, gy.data<T>(), COUT,
                   T(0), gw.data<T>(), COUT);
          }
          if (need_x) {
            gx = Tensor::empty(x.shape(), x.dtype(), x.device());
            k.gemm(false, true, rows, depth, COUT, T(1), gy.data<T>(), COUT, w.data<T>(), COUT,
                   T(0), gx.data<T>(), depth);
          }
          return;
        }
        // Panel by panel, as the forward: dW[depth, COUT] += patches^T gy (the patches are
        // recomputed rather than kept alive); dpatches = gy W^T, which col2im adds onto gx.
        // One panel after another (dW sums over them), each parallelised inside.
        const PanelPlan plan = plan_panels(g, sizeof(T), x.device(), 1, true);
        Tensor buffer = Tensor::empty({plan.rows_per_panel * g.OW, depth}, x.dtype(), x.device());
        if (need_w) gw = Tensor::empty(w.shape(), w.dtype(), w.device());
        if (need_x) gx = Tensor::zeros(x.shape(), x.dtype(), x.device());
        for (int64_t p = 0; p < plan.num_panels; ++p) {
          const int64_t row_begin = p * plan.rows_per_panel;
          const int64_t row_end = std::min(g.N * g.OH, row_begin + plan.rows_per_panel);
          const int64_t pixels = (row_end - row_begin) * g.OW;
          const T* gy_panel = gy.data<T>() + row_begin * g.OW * COUT;
          if (need_w) {
            im2col_rows(k, x.data<T>(), buffer.data<T>(), g, row_begin, row_end);
            k.gemm(true, false, depth, COUT, pixels, T(1), buffer.data<T>(), depth, gy_panel, COUT,
                   p == 0 ? T(0) : T(1), gw.data<T>(), COUT);
          }
          if (need_x) {
            k.gemm(false, true, pixels, depth, COUT, T(1), gy_panel, COUT, w.data<T>(), COUT,
                   T(0), buffer.data<T>(), depth);
            col2im_rows(k, buffer.data<T>(), gx.data<T>(), g, row_begin, row_end);
          }
        }
      });
      return std::vector<Tensor>{gx, gw};
    });
  }
  return out;
}

Tensor conv2d_bias_activation(const Tensor& x_in, const Tensor& kernel, const Tensor& bias, int sh,
                              int sw, const Padding2d& padding, bool relu_after,
                              const Tensor& residual) {
  return conv2d_bias_activation(x_in, kernel, bias, conv_options(sh, sw, padding), relu_after,
                                residual);
}

Tensor conv2d_bias_activation(const Tensor& x_in, const Tensor& kernel, const Tensor& bias,
                              const Conv2dOptions& options, bool relu_after,
                              const Tensor& residual) {
  GLIMPSE_OP_SCOPE("conv2d_bias_activation", conv2d_bias_activation, x_in, kernel, bias, options,
                   relu_after, residual);
  const char* name = "conv2d_bias_activation";
  const ConvArgs args = check_conv(name, x_in, kernel, options);
  check_bias_residual(name, args, x_in, bias, residual, kernel.shape());
  // Training, or a grouped convolution (one per group, concatenated): the composed ops.
  if (options.groups > 1 || any_requires_grad({x_in, kernel, bias, residual})) {
    Tensor y = add(conv2d(x_in, kernel, options), bias);
    if (residual.defined()) y = add(residual, y);
    return relu_after ? relu(y) : y;
  }
  return fused_conv_forward(name, args, x_in, kernel.contiguous(), Tensor(), bias, relu_after,
                            residual);
}

PackedConvKernel pack_conv_kernel(const Tensor& kernel_in) {
  GLIMPSE_OP_SCOPE("pack_conv_kernel", pack_conv_kernel, kernel_in);
  const char* name = "pack_conv_kernel";
  check_float(name, kernel_in, "kernel");
  if (kernel_in.rank() != 4)
    fail(name, "kernel must be (kh, kw, cin, cout), got shape ", shape_str(kernel_in.shape()));
  if (kernel_in.device() != Device::CPU)
    fail(name, "the packed layout is the CPU's; a kernel on ", device_name(kernel_in.device()),
         " is used as it is");
  const Shape& shape = kernel_in.shape();
  const int64_t depth = shape[0] * shape[1] * shape[2], COUT = shape[3];
  Tensor kernel = kernel_in.contiguous().detach();
  PackedConvKernel result;
  result.kernel_shape = shape;
  dispatch_float(name, kernel.dtype(), [&](auto tag) {
    using T = decltype(tag);
    result.packed = Tensor::empty({cpu::packed_b_size<T>(depth, COUT)}, kernel.dtype(), Device::CPU);
    cpu::pack_b(kernel.data<T>(), COUT, depth, COUT, result.packed.data<T>());
  });
  return result;
}

Tensor conv2d_bias_activation(const Tensor& x_in, const PackedConvKernel& kernel, const Tensor& bias,
                              int sh, int sw, const Padding2d& padding, bool relu_after,
                              const Tensor& residual) {
  GLIMPSE_OP_SCOPE("conv2d_bias_activation", conv2d_bias_activation, x_in, kernel, bias, sh, sw,
                   padding, relu_after, residual);
  const char* name = "conv2d_bias_activation (packed kernel)";
  if (!kernel.defined()) fail(name, "the packed kernel is empty (see pack_conv_kernel)");
  const ConvArgs args =
      check_conv(name, x_in, kernel.packed, kernel.kernel_shape, conv_options(sh, sw, padding));
  const int64_t depth = args.g.KH * args.g.KW * args.g.C;
  dispatch_float(name, kernel.packed.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (kernel.packed.rank() != 1 || kernel.packed.numel() != cpu::packed_b_size<T>(depth, args.COUT))
      fail(name, "the packed kernel ", shape_str(kernel.packed.shape()),
           " is not the packed form of a kernel ", shape_str(kernel.kernel_shape));
  });
  check_bias_residual(name, args, x_in, bias, residual, kernel.kernel_shape);
  if (any_requires_grad({x_in, bias, residual}))
    fail(name, "is for inference and records no gradient, but an input requires one; use the "
               "kernel tensor instead");
  return fused_conv_forward(name, args, x_in, Tensor(), kernel.packed, bias, relu_after, residual);
}

namespace {

Pool2dOptions pool_options(int sh, int sw, const Padding2d& padding) {
  Pool2dOptions o;
  o.stride_h = sh;
  o.stride_w = sw;
  o.padding = padding;
  return o;
}

Conv2dGeometry pool_geometry(const char* name, const Tensor& x, int ph, int pw,
                             const Pool2dOptions& o) {
  Conv2dGeometry g = make_geometry(
      name, x,
      Window{ph, pw, o.stride_h, o.stride_w, o.dilation_h, o.dilation_w, o.padding, o.ceil_mode});
  // A window wholly inside the padding would have nothing to pool (PyTorch refuses any padding
  // over half the window; ONNX says nothing).
  const int64_t extent_h = (g.KH - 1) * g.DH + 1, extent_w = (g.KW - 1) * g.DW + 1;
  if (g.pad_top >= extent_h || g.pad_bottom >= extent_h || g.pad_left >= extent_w ||
      g.pad_right >= extent_w)
    fail(name, "padding ", o.padding.str(), " reaches past a ", ph, "x", pw,
         " window: a window in the padding alone would pool nothing");
  g.count_include_pad = o.count_include_pad;
  return g;
}

}  // namespace

Tensor max_pool2d(const Tensor& x_in, int ph, int pw, int sh, int sw, const Padding2d& padding) {
  return max_pool2d(x_in, ph, pw, pool_options(sh, sw, padding));
}

Tensor avg_pool2d(const Tensor& x_in, int ph, int pw, int sh, int sw, const Padding2d& padding) {
  return avg_pool2d(x_in, ph, pw, pool_options(sh, sw, padding));
}

Tensor max_pool2d(const Tensor& x_in, int ph, int pw, const Pool2dOptions& options) {
  GLIMPSE_OP_SCOPE("max_pool2d", max_pool2d, x_in, ph, pw, options);
  const char* name = "max_pool2d";
  if (options.count_include_pad)
    fail(name, "count_include_pad is an option of average pooling; max pooling ignores padding");
  Conv2dGeometry g = pool_geometry(name, x_in, ph, pw, options);
  Tensor x = x_in.contiguous().detach();
  Tensor out = Tensor::empty({g.N, g.OH, g.OW, g.C}, x.dtype(), x.device());
  // Where each maximum came from, for the backward; not computed when there is none.
  const bool backward = any_requires_grad({x_in});
  Tensor arg = backward ? Tensor::empty({g.N, g.OH, g.OW, g.C}, DType::I32, x.device()) : Tensor();
  {
    profiler::Scope scope(name, [&] { return describe(g, g.C); });
    dispatch_float(name, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels_for<T>(x.device()).max_pool(x.data<T>(), out.data<T>(),
                                          backward ? arg.data<int32_t>() : nullptr, g);
    });
  }
  if (backward) {
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

Tensor avg_pool2d(const Tensor& x_in, int ph, int pw, const Pool2dOptions& options) {
  GLIMPSE_OP_SCOPE("avg_pool2d", avg_pool2d, x_in, ph, pw, options);
  const char* name = "avg_pool2d";
  if (options.dilation_h != 1 || options.dilation_w != 1)
    fail(name, "dilation is supported for max pooling only, got ", options.dilation_h, "x",
         options.dilation_w);
  Conv2dGeometry g = pool_geometry(name, x_in, ph, pw, options);
  Tensor x = x_in.contiguous().detach();
  Tensor out = Tensor::empty({g.N, g.OH, g.OW, g.C}, x.dtype(), x.device());
  {
    profiler::Scope scope(name, [&] { return describe(g, g.C); });
    dispatch_float(name, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels_for<T>(x.device()).avg_pool(x.data<T>(), out.data<T>(), g);
    });
  }
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
