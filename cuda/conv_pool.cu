// NHWC im2col / col2im for convolution, and max / average pooling with their backward passes.
//
// The backward kernels are written as gathers: one thread per *input* element visits the few
// output windows that contain it and sums their contributions. No two threads write the same
// element, so there are no atomics and the sums are deterministic.
//
// Window (oh, ow) covers input rows oh * SH - pad_top + kh * DH for kh in [0, KH), and columns
// likewise. Cells outside the image are padding.
#include <cmath>

#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"

namespace glimpse::cuda::detail {
namespace {

// The output positions o (0 <= o < out_size) whose window [o * stride - pad, ... + k) contains
// input position `pos`: first <= o <= last (empty when first > last).
struct WindowRange {
  int64_t first;
  int64_t last;
};

__device__ inline WindowRange windows_containing(int64_t pos, int64_t pad, int64_t k,
                                                 int64_t stride, int64_t out_size) {
  // o * stride - pad <= pos  and  pos < o * stride - pad + k
  const int64_t shifted = pos + pad;  // >= 0
  const int64_t lowest = shifted - k + 1;
  const int64_t first = lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
  const int64_t last_unclamped = shifted / stride;
  return {first, last_unclamped < out_size - 1 ? last_unclamped : out_size - 1};
}

// The divisor of average pooling along one axis of window o: its real (non-padding) cells, or
// with include_pad its cells inside [-pad, in_size + pad_after) (as on the CPU).
__device__ inline int64_t cells_in_window(int64_t o, int64_t pad, int64_t pad_after, int64_t k,
                                          int64_t stride, int64_t in_size, bool include_pad) {
  const int64_t begin = o * stride - pad;
  const int64_t end = begin + k;
  const int64_t lo = include_pad ? -pad : 0, hi = include_pad ? in_size + pad_after : in_size;
  return (end < hi ? end : hi) - (begin > lo ? begin : lo);
}

__device__ inline int64_t pool_count(const Conv2dGeometry& g, int64_t oh, int64_t ow) {
  return cells_in_window(oh, g.pad_top, g.pad_bottom, g.KH, g.SH, g.H, g.count_include_pad) *
         cells_in_window(ow, g.pad_left, g.pad_right, g.KW, g.SW, g.W, g.count_include_pad);
}

// cols[(n, oh, ow), (kh, kw, c)] = x[n, h, w, c], or 0 in the padding.
struct Im2col {
  const float* x;
  float* cols;
  Conv2dGeometry g;
  __device__ void operator()(int64_t i) const {
    int64_t rest = i;
    const int64_t c = rest % g.C;
    rest /= g.C;
    const int64_t kw = rest % g.KW;
    rest /= g.KW;
    const int64_t kh = rest % g.KH;
    rest /= g.KH;
    const int64_t ow = rest % g.OW;
    rest /= g.OW;
    const int64_t oh = rest % g.OH;
    const int64_t n = rest / g.OH;
    const int64_t h = oh * g.SH - g.pad_top + kh * g.DH;
    const int64_t w = ow * g.SW - g.pad_left + kw * g.DW;
    const bool inside = h >= 0 && h < g.H && w >= 0 && w < g.W;
    cols[i] = inside ? x[((n * g.H + h) * g.W + w) * g.C + c] : 0.0f;
  }
};

// gx[n, h, w, c] += sum of the cols entries that im2col copied from (n, h, w, c).
struct Col2im {
  const float* cols;
  float* gx;
  Conv2dGeometry g;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % g.C;
    const int64_t w = (i / g.C) % g.W;
    const int64_t h = (i / (g.C * g.W)) % g.H;
    const int64_t n = i / (g.C * g.W * g.H);
    float total = 0.0f;
    if (g.DH != 1 || g.DW != 1) {
      // Dilated: each tap kh has its own output row (h + pad_top - kh * DH) / SH, when that
      // divides evenly and is in range (as on the CPU).
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t th = h + g.pad_top - kh * g.DH;
        if (th < 0) break;
        if (th % g.SH != 0 || th / g.SH >= g.OH) continue;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t tw = w + g.pad_left - kw * g.DW;
          if (tw < 0) break;
          if (tw % g.SW != 0 || tw / g.SW >= g.OW) continue;
          const int64_t patch = (n * g.OH + th / g.SH) * g.OW + tw / g.SW;
          total += cols[(patch * g.KH * g.KW + kh * g.KW + kw) * g.C + c];
        }
      }
      gx[i] += total;
      return;
    }
    const WindowRange rows = windows_containing(h, g.pad_top, g.KH, g.SH, g.OH);
    const WindowRange columns = windows_containing(w, g.pad_left, g.KW, g.SW, g.OW);
    for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
      const int64_t kh = h + g.pad_top - oh * g.SH;
      for (int64_t ow = columns.first; ow <= columns.last; ++ow) {
        const int64_t kw = w + g.pad_left - ow * g.SW;
        const int64_t patch = (n * g.OH + oh) * g.OW + ow;
        total += cols[(patch * g.KH * g.KW + kh * g.KW + kw) * g.C + c];
      }
    }
    gx[i] += total;
  }
};

// Padding counts as -inf, so it never beats a real cell: only real cells are scanned, and the
// first one is always taken. Later cells must be strictly larger (the first maximum wins), except
// that the first NaN wins, so a NaN is never hidden (as on the CPU).
struct MaxPool {
  const float* x;
  float* y;
  int32_t* argmax;
  Conv2dGeometry g;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % g.C;
    const int64_t ow = (i / g.C) % g.OW;
    const int64_t oh = (i / (g.C * g.OW)) % g.OH;
    const int64_t n = i / (g.C * g.OW * g.OH);
    const float* image = x + n * g.H * g.W * g.C;
    float best = -INFINITY;
    int64_t best_index = -1;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t h = oh * g.SH - g.pad_top + kh * g.DH;
      if (h < 0 || h >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t w = ow * g.SW - g.pad_left + kw * g.DW;
        if (w < 0 || w >= g.W) continue;
        const int64_t index = (h * g.W + w) * g.C + c;
        const float v = image[index];
        if (best_index < 0 || v > best || (v != v && best == best)) {
          best = v;
          best_index = index;
        }
      }
    }
    y[i] = best;
    if (argmax) argmax[i] = static_cast<int32_t>(best_index);  // null at inference
  }
};

// gx[n, h, w, c] = sum of gy over the windows whose argmax is this cell.
struct MaxPoolBackward {
  const float* gy;
  const int32_t* argmax;
  float* gx;
  Conv2dGeometry g;
  __device__ void operator()(int64_t i) const {
    const int64_t image_size = g.H * g.W * g.C;
    const int64_t n = i / image_size;
    const int64_t index_in_image = i % image_size;
    const int64_t c = i % g.C;
    const int64_t w = (i / g.C) % g.W;
    const int64_t h = (i / (g.C * g.W)) % g.H;
    // The windows whose span (dilated extent) holds the cell; the argmax picks the right ones.
    const WindowRange rows = windows_containing(h, g.pad_top, (g.KH - 1) * g.DH + 1, g.SH, g.OH);
    const WindowRange columns =
        windows_containing(w, g.pad_left, (g.KW - 1) * g.DW + 1, g.SW, g.OW);
    float total = 0.0f;
    for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
      for (int64_t ow = columns.first; ow <= columns.last; ++ow) {
        const int64_t out = ((n * g.OH + oh) * g.OW + ow) * g.C + c;
        if (argmax[out] == index_in_image) total += gy[out];
      }
    }
    gx[i] = total;
  }
};

// Average over the real cells only (padding excluded from the count, as Keras does), or with
// count_include_pad over the explicitly padded window. No dilation.
struct AvgPool {
  const float* x;
  float* y;
  Conv2dGeometry g;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % g.C;
    const int64_t ow = (i / g.C) % g.OW;
    const int64_t oh = (i / (g.C * g.OW)) % g.OH;
    const int64_t n = i / (g.C * g.OW * g.OH);
    const float* image = x + n * g.H * g.W * g.C;
    float total = 0.0f;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t h = oh * g.SH - g.pad_top + kh;
      if (h < 0 || h >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t w = ow * g.SW - g.pad_left + kw;
        if (w < 0 || w >= g.W) continue;
        total += image[(h * g.W + w) * g.C + c];
      }
    }
    y[i] = total / static_cast<float>(pool_count(g, oh, ow));
  }
};

// gx[n, h, w, c] = sum over the windows containing the cell of gy / (the window's divisor).
struct AvgPoolBackward {
  const float* gy;
  float* gx;
  Conv2dGeometry g;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % g.C;
    const int64_t w = (i / g.C) % g.W;
    const int64_t h = (i / (g.C * g.W)) % g.H;
    const int64_t n = i / (g.C * g.W * g.H);
    const WindowRange rows = windows_containing(h, g.pad_top, g.KH, g.SH, g.OH);
    const WindowRange columns = windows_containing(w, g.pad_left, g.KW, g.SW, g.OW);
    float total = 0.0f;
    for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
      for (int64_t ow = columns.first; ow <= columns.last; ++ow) {
        const int64_t count = pool_count(g, oh, ow);
        total += gy[((n * g.OH + oh) * g.OW + ow) * g.C + c] / static_cast<float>(count);
      }
    }
    gx[i] = total;
  }
};

int64_t input_size(const Conv2dGeometry& g) { return g.N * g.H * g.W * g.C; }
int64_t output_size(const Conv2dGeometry& g) { return g.N * g.OH * g.OW * g.C; }

}  // namespace

void im2col(const float* x, float* cols, const Conv2dGeometry& g) {
  for_each_index("im2col", g.N * g.OH * g.OW * g.KH * g.KW * g.C, Im2col{x, cols, g});
}

void col2im(const float* cols, float* gx, const Conv2dGeometry& g) {
  if (output_size(g) == 0 || g.KH * g.KW == 0) return;  // nothing to add
  for_each_index("col2im", input_size(g), Col2im{cols, gx, g});
}

void max_pool(const float* x, float* y, int32_t* argmax, const Conv2dGeometry& g) {
  for_each_index("max_pool", output_size(g), MaxPool{x, y, argmax, g});
}

void max_pool_backward(const float* gy, const int32_t* argmax, float* gx, const Conv2dGeometry& g) {
  for_each_index("max_pool_backward", input_size(g), MaxPoolBackward{gy, argmax, gx, g});
}

void avg_pool(const float* x, float* y, const Conv2dGeometry& g) {
  for_each_index("avg_pool", output_size(g), AvgPool{x, y, g});
}

void avg_pool_backward(const float* gy, float* gx, const Conv2dGeometry& g) {
  for_each_index("avg_pool_backward", input_size(g), AvgPoolBackward{gy, gx, g});
}

}  // namespace glimpse::cuda::detail
