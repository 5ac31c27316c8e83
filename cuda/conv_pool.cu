// NHWC im2col / col2im for convolution, and max / average pooling with their backward passes.
//
// The backward kernels are written as gathers: one thread per *input* element visits the few
// output windows that contain it and sums their contributions. No two threads write the same
// element, so there are no atomics and the sums are deterministic.
//
// Window (oh, ow) covers input rows oh * SH - pad_top + [0, KH) and columns
// ow * SW - pad_left + [0, KW). Cells outside the image are padding.
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

// Number of real (non-padding) cells along one axis of window o.
__device__ inline int64_t cells_in_window(int64_t o, int64_t pad, int64_t k, int64_t stride,
                                          int64_t in_size) {
  const int64_t begin = o * stride - pad;
  const int64_t end = begin + k;
  return (end < in_size ? end : in_size) - (begin > 0 ? begin : 0);
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
    const int64_t h = oh * g.SH - g.pad_top + kh;
    const int64_t w = ow * g.SW - g.pad_left + kw;
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
    const WindowRange rows = windows_containing(h, g.pad_top, g.KH, g.SH, g.OH);
    const WindowRange columns = windows_containing(w, g.pad_left, g.KW, g.SW, g.OW);
    float total = 0.0f;
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
      const int64_t h = oh * g.SH - g.pad_top + kh;
      if (h < 0 || h >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t w = ow * g.SW - g.pad_left + kw;
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
    const WindowRange rows = windows_containing(h, g.pad_top, g.KH, g.SH, g.OH);
    const WindowRange columns = windows_containing(w, g.pad_left, g.KW, g.SW, g.OW);
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

// Average over the real cells only (padding excluded from the count, as Keras does).
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
    const int64_t count = cells_in_window(oh, g.pad_top, g.KH, g.SH, g.H) *
                          cells_in_window(ow, g.pad_left, g.KW, g.SW, g.W);
    y[i] = total / static_cast<float>(count);
  }
};

// gx[n, h, w, c] = sum over the windows containing the cell of gy / (real cells of the window).
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
      const int64_t window_rows = cells_in_window(oh, g.pad_top, g.KH, g.SH, g.H);
      for (int64_t ow = columns.first; ow <= columns.last; ++ow) {
        const int64_t count = window_rows * cells_in_window(ow, g.pad_left, g.KW, g.SW, g.W);
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
