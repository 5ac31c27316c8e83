// CPU kernels for NHWC convolution and pooling: im2col / col2im (a convolution is then one GEMM
// against the Keras (kh, kw, cin, cout) kernel viewed as a (KH*KW*C, COUT) matrix), and max / average
// pooling with their backward passes. Geometry (padding, possibly asymmetric, and dilation) arrives
// resolved.
#include <algorithm>
#include <cstring>
#include <limits>

#include "tensor/cpu/kernels_impl.h"

namespace glimpse::cpu::detail {
namespace {

// The part of a window that lies inside the input along one axis: window offsets [lo, hi) for the
// window starting at input coordinate `start` (negative when it begins in the padding), whose
// offset k sits at start + k * dilation.
struct WindowSpan {
  int64_t lo, hi;
};
inline WindowSpan inside_span(int64_t start, int64_t window, int64_t input_size,
                              int64_t dilation = 1) {
  if (dilation == 1) return {std::max<int64_t>(0, -start), std::min(window, input_size - start)};
  const int64_t lo = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
  const int64_t room = input_size - start;  // cells from start to the input's end
  const int64_t hi = room <= 0 ? 0 : std::min(window, (room + dilation - 1) / dilation);
  return {lo, hi};
}

// The divisor of average pooling for one axis of the window starting at `start`: its real cells,
// or with count_include_pad its cells inside [-pad_before, size + pad_after) (the cells past that,
// which only ceil_mode reaches, count as nothing in either case).
inline int64_t average_count(int64_t start, int64_t window, int64_t size, int64_t pad_before,
                             int64_t pad_after, bool include_pad) {
  if (!include_pad) {
    const WindowSpan span = inside_span(start, window, size);
    return span.hi - span.lo;
  }
  return std::min(start + window, size + pad_after) - std::max(start, -pad_before);
}

inline int64_t pool_count(const Conv2dGeometry& g, int64_t h_start, int64_t w_start) {
  return average_count(h_start, g.KH, g.H, g.pad_top, g.pad_bottom, g.count_include_pad) *
         average_count(w_start, g.KW, g.W, g.pad_left, g.pad_right, g.count_include_pad);
}

// The output positions whose windows cover input coordinate `in` along one axis:
// out * stride - pad <= in < out * stride - pad + window.
struct OutputSpan {
  int64_t first, last;  // inclusive; empty when first > last
};
inline OutputSpan covering_outputs(int64_t in, int64_t pad, int64_t window, int64_t stride,
                                   int64_t output_size) {
  const int64_t lowest_start = in + pad - window + 1;  // out * stride must be at least this
  const int64_t first = lowest_start <= 0 ? 0 : (lowest_start + stride - 1) / stride;
  const int64_t last = std::min(output_size - 1, (in + pad) / stride);
  return {first, last};
}

template <class T>
void im2col(const T* x, T* cols, const Conv2dGeometry& g) {
  const int64_t row_length = g.KH * g.KW * g.C;
  parallel_for(g.N * g.OH, g.OW * row_length, [&](int64_t n_oh) {
    const int64_t n = n_oh / g.OH;
    const int64_t oh = n_oh % g.OH;
    const int64_t h_start = oh * g.SH - g.pad_top;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      T* row = cols + (n_oh * g.OW + ow) * row_length;
      const int64_t w_start = ow * g.SW - g.pad_left;
      const WindowSpan w_span = inside_span(w_start, g.KW, g.W, g.DW);
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        T* dst = row + kh * g.KW * g.C;
        const int64_t ih = h_start + kh * g.DH;
        if (ih < 0 || ih >= g.H || w_span.lo >= w_span.hi) {
          std::fill(dst, dst + g.KW * g.C, T(0));
          continue;
        }
        std::fill(dst, dst + w_span.lo * g.C, T(0));
        const T* src = x + ((n * g.H + ih) * g.W + w_start + w_span.lo * g.DW) * g.C;
        if (g.DW == 1) {
          // The cells kw in [lo, hi) of one window row are neighbours in memory: one copy.
          std::memcpy(dst + w_span.lo * g.C, src, (w_span.hi - w_span.lo) * g.C * sizeof(T));
        } else {
          for (int64_t kw = w_span.lo; kw < w_span.hi; ++kw, src += g.DW * g.C)
            std::memcpy(dst + kw * g.C, src, g.C * sizeof(T));
        }
        std::fill(dst + w_span.hi * g.C, dst + g.KW * g.C, T(0));
      }
    }
  });
}

// The adjoint of im2col, computed as a gather: each input pixel sums the column entries that
// copied it, so every gx element is owned by one thread and the order of additions is fixed.
template <class T>
void col2im_dilated(const T* cols, T* gx, const Conv2dGeometry& g);

template <class T>
void col2im(const T* cols, T* gx, const Conv2dGeometry& g) {
  if (g.DH != 1 || g.DW != 1) return col2im_dilated(cols, gx, g);
  const int64_t row_length = g.KH * g.KW * g.C;
  parallel_for(g.N * g.H, g.W * g.KH * g.KW * g.C, [&](int64_t n_ih) {
    const int64_t n = n_ih / g.H;
    const int64_t ih = n_ih % g.H;
    const OutputSpan oh_span = covering_outputs(ih, g.pad_top, g.KH, g.SH, g.OH);
    for (int64_t iw = 0; iw < g.W; ++iw) {
      T* dst = gx + (n_ih * g.W + iw) * g.C;
      const OutputSpan ow_span = covering_outputs(iw, g.pad_left, g.KW, g.SW, g.OW);
      for (int64_t oh = oh_span.first; oh <= oh_span.last; ++oh) {
        const int64_t kh = ih + g.pad_top - oh * g.SH;
        for (int64_t ow = ow_span.first; ow <= ow_span.last; ++ow) {
          const int64_t kw = iw + g.pad_left - ow * g.SW;
          const T* src = cols + ((n * g.OH + oh) * g.OW + ow) * row_length + (kh * g.KW + kw) * g.C;
          for (int64_t c = 0; c < g.C; ++c) dst[c] += src[c];
        }
      }
    }
  });
}

// With dilation the windows covering an input pixel are no longer a run of outputs: each tap kh
// has its own output row oh = (ih + pad_top - kh * DH) / SH, when that divides evenly and is in
// range. Same gather form and fixed order as col2im.
template <class T>
void col2im_dilated(const T* cols, T* gx, const Conv2dGeometry& g) {
  const int64_t row_length = g.KH * g.KW * g.C;
  parallel_for(g.N * g.H, g.W * g.KH * g.KW * g.C, [&](int64_t n_ih) {
    const int64_t n = n_ih / g.H;
    const int64_t ih = n_ih % g.H;
    for (int64_t iw = 0; iw < g.W; ++iw) {
      T* dst = gx + (n_ih * g.W + iw) * g.C;
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t th = ih + g.pad_top - kh * g.DH;
        if (th < 0) break;  // later taps sit further down: no output starts that high
        if (th % g.SH != 0 || th / g.SH >= g.OH) continue;
        const int64_t oh = th / g.SH;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t tw = iw + g.pad_left - kw * g.DW;
          if (tw < 0) break;
          if (tw % g.SW != 0 || tw / g.SW >= g.OW) continue;
          const int64_t ow = tw / g.SW;
          const T* src = cols + ((n * g.OH + oh) * g.OW + ow) * row_length + (kh * g.KW + kw) * g.C;
          for (int64_t c = 0; c < g.C; ++c) dst[c] += src[c];
        }
      }
    }
  });
}

// kIndex: whether the argmax is written too (training); without it (inference) the inner loop is
// a plain running maximum.
template <class T, bool kIndex>
void max_pool_impl(const T* x, T* y, int32_t* argmax, const Conv2dGeometry& g) {
  parallel_for(g.N * g.OH, g.OW * g.KH * g.KW * g.C, [&](int64_t n_oh) {
    const int64_t n = n_oh / g.OH;
    const int64_t h_start = (n_oh % g.OH) * g.SH - g.pad_top;
    const WindowSpan h_span = inside_span(h_start, g.KH, g.H, g.DH);
    const T* image = x + n * g.H * g.W * g.C;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      T* best = y + (n_oh * g.OW + ow) * g.C;
      int32_t* best_index = kIndex ? argmax + (n_oh * g.OW + ow) * g.C : nullptr;
      const int64_t w_start = ow * g.SW - g.pad_left;
      const WindowSpan w_span = inside_span(w_start, g.KW, g.W, g.DW);
      // Padded cells are -inf, so they can never beat a real cell: scanning only the real cells
      // gives the same maximum, and the argmax always points at a real pixel.
      // A window without a real cell: only when the padding or the dilation skips the whole input.
      if (h_span.lo >= h_span.hi || w_span.lo >= w_span.hi) {
        std::fill(best, best + g.C, -std::numeric_limits<T>::infinity());
        if constexpr (kIndex) std::fill(best_index, best_index + g.C, -1);
        continue;
      }
      for (int64_t kh = h_span.lo; kh < h_span.hi; ++kh) {
        for (int64_t kw = w_span.lo; kw < w_span.hi; ++kw) {
          const int32_t flat =
              static_cast<int32_t>(((h_start + kh * g.DH) * g.W + (w_start + kw * g.DW)) * g.C);
          const T* cell = image + flat;
          if (kh == h_span.lo && kw == w_span.lo) {
            std::copy(cell, cell + g.C, best);
            if constexpr (kIndex) {
              for (int64_t c = 0; c < g.C; ++c) best_index[c] = flat + static_cast<int32_t>(c);
            }
            continue;
          }
          // Later cells must be strictly larger (the first maximum wins); the first NaN wins too.
          // Written as selects rather than a branch so the loop vectorises.
          for (int64_t c = 0; c < g.C; ++c) {
            const T v = cell[c];
            const bool take = v > best[c] || (v != v && best[c] == best[c]);
            best[c] = take ? v : best[c];
            if constexpr (kIndex) best_index[c] = take ? flat + static_cast<int32_t>(c) : best_index[c];
          }
        }
      }
    }
  });
}

// Windows may overlap (stride < window), so two outputs can route to one input: images are
// processed in parallel, each image's scatter serially.
template <class T>
void max_pool(const T* x, T* y, int32_t* argmax, const Conv2dGeometry& g) {
  if (argmax) {
    max_pool_impl<T, true>(x, y, argmax, g);
  } else {
    max_pool_impl<T, false>(x, y, nullptr, g);
  }
}

template <class T>
void max_pool_backward(const T* gy, const int32_t* argmax, T* gx, const Conv2dGeometry& g) {
  const int64_t image_size = g.H * g.W * g.C;
  const int64_t outputs_per_image = g.OH * g.OW * g.C;
  parallel_for(g.N, image_size + outputs_per_image, [&](int64_t n) {
    T* image_grad = gx + n * image_size;
    std::fill(image_grad, image_grad + image_size, T(0));
    const T* g_out = gy + n * outputs_per_image;
    const int32_t* index = argmax + n * outputs_per_image;
    for (int64_t i = 0; i < outputs_per_image; ++i) {
      if (index[i] >= 0) image_grad[index[i]] += g_out[i];
    }
  });
}

// TF semantics by default: the average is over the real cells only, padding excluded from the
// count; with g.count_include_pad the explicit padding counts as zeros (pool_count).
template <class T>
void avg_pool(const T* x, T* y, const Conv2dGeometry& g) {
  parallel_for(g.N * g.OH, g.OW * g.KH * g.KW * g.C, [&](int64_t n_oh) {
    const int64_t n = n_oh / g.OH;
    const int64_t h_start = (n_oh % g.OH) * g.SH - g.pad_top;
    const WindowSpan h_span = inside_span(h_start, g.KH, g.H);
    const T* image = x + n * g.H * g.W * g.C;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      T* out = y + (n_oh * g.OW + ow) * g.C;
      const int64_t w_start = ow * g.SW - g.pad_left;
      const WindowSpan w_span = inside_span(w_start, g.KW, g.W);
      std::fill(out, out + g.C, T(0));
      for (int64_t kh = h_span.lo; kh < h_span.hi; ++kh) {
        for (int64_t kw = w_span.lo; kw < w_span.hi; ++kw) {
          const T* cell = image + ((h_start + kh) * g.W + (w_start + kw)) * g.C;
          for (int64_t c = 0; c < g.C; ++c) out[c] += cell[c];
        }
      }
      const T count = static_cast<T>(pool_count(g, h_start, w_start));
      for (int64_t c = 0; c < g.C; ++c) out[c] /= count;
    }
  });
}

// Gather form, like col2im: each input pixel collects gy / count from the windows covering it.
template <class T>
void avg_pool_backward(const T* gy, T* gx, const Conv2dGeometry& g) {
  parallel_for(g.N * g.H, g.W * g.KH * g.KW * g.C, [&](int64_t n_ih) {
    const int64_t n = n_ih / g.H;
    const int64_t ih = n_ih % g.H;
    const OutputSpan oh_span = covering_outputs(ih, g.pad_top, g.KH, g.SH, g.OH);
    for (int64_t iw = 0; iw < g.W; ++iw) {
      T* dst = gx + (n_ih * g.W + iw) * g.C;
      std::fill(dst, dst + g.C, T(0));
      const OutputSpan ow_span = covering_outputs(iw, g.pad_left, g.KW, g.SW, g.OW);
      for (int64_t oh = oh_span.first; oh <= oh_span.last; ++oh) {
        const int64_t h_start = oh * g.SH - g.pad_top;
        for (int64_t ow = ow_span.first; ow <= ow_span.last; ++ow) {
          const T count = static_cast<T>(pool_count(g, h_start, ow * g.SW - g.pad_left));
          const T* src = gy + ((n * g.OH + oh) * g.OW + ow) * g.C;
          for (int64_t c = 0; c < g.C; ++c) dst[c] += src[c] / count;
        }
      }
    }
  });
}

}  // namespace

template <class T>
void add_conv_kernels(Kernels<T>& table) {
  table.im2col = im2col<T>;
  table.col2im = col2im<T>;
  table.max_pool = max_pool<T>;
  table.max_pool_backward = max_pool_backward<T>;
  table.avg_pool = avg_pool<T>;
  table.avg_pool_backward = avg_pool_backward<T>;
}

template void add_conv_kernels<float>(Kernels<float>&);
template void add_conv_kernels<double>(Kernels<double>&);

}  // namespace glimpse::cpu::detail
