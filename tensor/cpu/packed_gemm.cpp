// The packed-B GEMM of tensor/cpu/packed_gemm.h: layout, register tile, blocking, and where the
// rows of A come from (a matrix, or a convolution's input read in place).
#include "tensor/cpu/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/parallel.h"

namespace glimpse::cpu {
namespace {

// Two register widths, chosen per machine at run time (packed_gemm_vector_bytes): W = 32 bytes
// (8 floats, a ymm register: AVX2) or W = 64 bytes (16 floats, a zmm register: AVX-512). Both are
// compiled on every build (GCC's vector extensions split a 64-byte vector where the target has
// none), so both are tested everywhere; only the speed depends on the machine.
template <class T, int W>
constexpr int kLanes = W / static_cast<int>(sizeof(T));
// Tile of C: kMR rows x kNR columns, 2 * kMR accumulators. With 16 registers (AVX2), six rows is
// the most that leaves registers for the two B vectors and the broadcast value (12 + 3); with 32
// (AVX-512), twelve (24 + 3).
template <int W>
constexpr int kMR = W == 64 ? 12 : 6;
constexpr int kMaxMR = 12;
template <class T, int W>
constexpr int kNR = 2 * kLanes<T, W>;
// Most rows of B (values of k) per pass over k: the B panel block (kKC x kNR) is 16 KB in float
// with 32-byte vectors and 32 KB with 64-byte ones, within the L1 data cache (32-48 KB), and the
// tile's partial sums go through C once per pass. The passes split K evenly (1088 = 4 x 272 would
// exceed it, so 5 x 217.6).
constexpr int64_t kKC = 256;
// Columns per block of C: a few hundred rows of them (a thread's share of a batch-1 convolution)
// fit in L2 next to the A block.
constexpr int64_t kNC = 256;
// Rows per block of A: 384 x kKC floats is 384 KB, which L2 (1-2 MB per core on the machines
// measured) holds next to the block of C. All 289 rows of a 17x17 convolution then make one
// block, so its B is read once (with 192, twice: batch 8 ran 5-10% slower, bench/RESULTS.md).
constexpr int64_t kMC = 384;
// A convolution whose input has fewer channels is not read in place (see conv_packed_supported):
// a pass would be cut into too many short segments.
constexpr int64_t kMinSegment = 16;
constexpr int kMaxSegments = static_cast<int>(kKC / kMinSegment) + 2;

template <class T, int W>
struct VectorOf {
  typedef T type __attribute__((vector_size(W)));
};
template <class T, int W>
using Vec = typename VectorOf<T, W>::type;

template <class V, class T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));  // unaligned: C and the residual rows have any alignment
  return v;
}
template <class T, class V>
inline void store(T* p, V v) {
  std::memcpy(p, &v, sizeof(v));
}
// Every lane x. (Not Vec<T>{} + x: without -ffast-math that is a real addition of 0, one more
// instruction per broadcast in the inner loop.)
template <class T, int W>
inline Vec<T, W> broadcast(T x) {
  constexpr int L = kLanes<T, W>;
  if constexpr (L == 16) {
    return Vec<T, W>{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
  } else if constexpr (L == 8) {
    return Vec<T, W>{x, x, x, x, x, x, x, x};
  } else {
    static_assert(L == 4);
    return Vec<T, W>{x, x, x, x};
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The passes over k: ceil(K / kKC) of them, K split evenly; pass p covers [pass_begin(p),
// pass_begin(p + 1)). K = 0 is one empty pass (the tile still writes bias + residual).
int64_t pass_count(int64_t K) { return std::max<int64_t>(1, ceil_div(K, kKC)); }
int64_t pass_begin(int64_t K, int64_t passes, int64_t p) { return K * p / passes; }

// A tile's view of one pass: its k range cut into segments, each with one pointer per row to
// `length` consecutive values of A. A matrix has one segment per pass; a convolution read in place
// has one per window cell the pass touches (its rows are output pixels, and a cell's values are
// the C channels of one input pixel, or zeros where the window hangs over the border).
template <class T>
struct Segment {
  const T* row[kMaxMR];
  int64_t length;
};

template <class T>
struct MatrixRows {
  const T* A;
  int64_t lda;
  int segments(int64_t row, int rows, int64_t k0, int64_t k1, Segment<T>* out) const {
    for (int r = 0; r < rows; ++r) out[0].row[r] = A + (row + r) * lda + k0;
    out[0].length = k1 - k0;
    return 1;
  }
};

template <class T>
struct ConvRows {
  const T* x;
  const T* zeros;  // g.C zeros: the padding
  Conv2dGeometry g;
  // Per row (output pixel): the offset of its image in x, and its window's top-left input cell.
  std::vector<int64_t> image_offset, top, left;

  ConvRows(const T* x_in, const T* zeros_in, const Conv2dGeometry& geometry, int64_t first_pixel,
           int64_t pixels)
      : x(x_in), zeros(zeros_in), g(geometry), image_offset(pixels), top(pixels), left(pixels) {
    for (int64_t i = 0; i < pixels; ++i) {
      const int64_t p = first_pixel + i, n = p / (g.OH * g.OW), in_image = p % (g.OH * g.OW);
      image_offset[i] = n * g.H * g.W * g.C;
      top[i] = (in_image / g.OW) * g.SH - g.pad_top;
      left[i] = (in_image % g.OW) * g.SW - g.pad_left;
    }
  }
  int segments(int64_t row, int rows, int64_t k0, int64_t k1, Segment<T>* out) const {
    int count = 0;
    for (int64_t k = k0; k < k1; ++count) {
      const int64_t cell = k / g.C, channel = k % g.C;
      const int64_t length = std::min(k1 - k, g.C - channel);
      const int64_t kh = cell / g.KW, kw = cell % g.KW;
      for (int r = 0; r < rows; ++r) {
        const int64_t ih = top[row + r] + kh, iw = left[row + r] + kw;
        const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
        out[count].row[r] =
            (inside ? x + image_offset[row + r] + (ih * g.W + iw) * g.C : zeros) + channel;
      }
      out[count].length = length;
      k += length;
    }
    return count;
  }
};

// What a tile does besides accumulating: start from zero (first pass over k) or from the partial
// sums stored in C; on the last pass add the bias and residual and apply the ReLU.
template <class T>
struct TileEnds {
  bool first, last;
  const T* bias;      // kNR values, or null
  const T* residual;  // R rows of kNR values with stride ldr, or null
  int64_t ldr;
  bool relu;
  // Lines of the next block of B to fetch into the cache meanwhile, one every few steps over k:
  // issued all at once before the tile, they filled the core's miss buffers and stalled it (the
  // prefetch instruction held ~4% of a batch-1 forward's samples in `perf`).
  const char* prefetch;
  int64_t prefetch_lines;
};

// C tile [R, kNR] (+)= A rows [R, pass depth] x B panel block [pass depth, kNR] (contiguous).
template <class T, int W, int R>
void tile(const Segment<T>* segments, int count, const T* b, T* c, int64_t ldc,
          const TileEnds<T>& ends) {
  using V = Vec<T, W>;
  constexpr int L = kLanes<T, W>;
  V lo[R], hi[R];
  if (ends.last && ends.residual) {  // needed only after the k loop: ask for it now
    for (int r = 0; r < R; ++r) __builtin_prefetch(ends.residual + r * ends.ldr);
  }
  for (int r = 0; r < R; ++r) {
    if (ends.first) {
      lo[r] = V{};
      hi[r] = V{};
    } else {
      lo[r] = load<V>(c + r * ldc);
      hi[r] = load<V>(c + r * ldc + L);
    }
  }
  const char* prefetch = ends.prefetch;
  int64_t prefetch_lines = ends.prefetch_lines;
  for (int s = 0; s < count; ++s) {
    const T* a[R];
    for (int r = 0; r < R; ++r) a[r] = segments[s].row[r];
    const int64_t length = segments[s].length;
    const auto step = [&](int64_t k) __attribute__((always_inline)) {
      const V b_lo = load<V>(b + k * kNR<T, W>), b_hi = load<V>(b + k * kNR<T, W> + L);
      for (int r = 0; r < R; ++r) {
        const V a_rk = broadcast<T, W>(a[r][k]);
        lo[r] += a_rk * b_lo;  // contracted to FMA (GCC's default)
        hi[r] += a_rk * b_hi;
      }
    };
    // Steps in groups of 8, unrolled (the loop's own increment and compare were a measurable
    // share of a 12-row tile's step: unrolling took a 17x17 convolution from 141 to 146 GFLOP/s
    // on the AVX-512 machine, bench/RESULTS.md), with one prefetch per group while lines remain.
    int64_t k = 0;
    for (; k + 8 <= length; k += 8) {
      if (prefetch_lines > 0) {
        __builtin_prefetch(prefetch);
        prefetch += 64;
        --prefetch_lines;
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) step(k + j);
    }
    for (; k < length; ++k) step(k);
    b += length * kNR<T, W>;
  }
  if (ends.last) {
    for (int r = 0; r < R; ++r) {
      if (ends.bias) {
        lo[r] += load<V>(ends.bias);
        hi[r] += load<V>(ends.bias + L);
      }
      if (ends.residual) {
        lo[r] += load<V>(ends.residual + r * ends.ldr);
        hi[r] += load<V>(ends.residual + r * ends.ldr + L);
      }
      if (ends.relu) {  // x < 0 ? 0 : x, so that NaN propagates as in the ReLU op
        lo[r] = lo[r] < V{} ? V{} : lo[r];
        hi[r] = hi[r] < V{} ? V{} : hi[r];
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    store(c + r * ldc, lo[r]);
    store(c + r * ldc + L, hi[r]);
  }
}

// The tile of `rows` rows (1..R): one compiled tile per row count, so the accumulators stay in
// registers (a run-time row count would put them in memory).
template <class T, int W, int R = kMR<W>>
void tile_rows(int rows, const Segment<T>* segments, int count, const T* b, T* c, int64_t ldc,
               const TileEnds<T>& ends) {
  if constexpr (R > 1) {
    if (rows < R) return tile_rows<T, W, R - 1>(rows, segments, count, b, c, ldc, ends);
  }
  tile<T, W, R>(segments, count, b, c, ldc, ends);
}

// A tile in the last, partial column panel (cols < kNR): computed full width in a local buffer
// (the packed panel's missing columns are zeros) and only its first `cols` columns copied out.
template <class T, int W>
void edge_tile(int rows, int cols, const Segment<T>* segments, int count, const T* b, T* c,
               int64_t ldc, TileEnds<T> ends) {
  T buffer[kMR<W> * kNR<T, W>] = {};
  T bias[kNR<T, W>] = {};
  T residual[kMR<W> * kNR<T, W>] = {};
  for (int r = 0; r < rows && !ends.first; ++r) {
    std::copy(c + r * ldc, c + r * ldc + cols, buffer + r * kNR<T, W>);
  }
  if (ends.last && ends.bias) {
    std::copy(ends.bias, ends.bias + cols, bias);
    ends.bias = bias;
  }
  if (ends.last && ends.residual) {
    for (int r = 0; r < rows; ++r) {
      const T* from = ends.residual + r * ends.ldr;
      std::copy(from, from + cols, residual + r * kNR<T, W>);
    }
    ends.residual = residual;
    ends.ldr = kNR<T, W>;
  }
  tile_rows<T, W>(rows, segments, count, b, buffer, kNR<T, W>, ends);
  for (int r = 0; r < rows; ++r) {
    std::copy(buffer + r * kNR<T, W>, buffer + r * kNR<T, W> + cols, c + r * ldc);
  }
}

// Packed form: the rows of B cut into the passes over k, each pass stored as its column panels one
// after another, each panel (pass depth) rows of kNR values (columns past N are zeros). So the
// panel block that a pass reads next is the next one in memory, and the hardware prefetcher
// streams a whole pass's blocks of B without a break.
template <class T, int W>
int64_t packed_size(int64_t K, int64_t N) {
  return ceil_div(N, kNR<T, W>) * K * kNR<T, W>;
}

template <class T, int W>
void pack(const T* B, int64_t ldb, int64_t K, int64_t N, T* packed) {
  const int64_t panels = ceil_div(N, kNR<T, W>), passes = pass_count(K);
  for (int64_t pass = 0; pass < passes; ++pass) {
    const int64_t k0 = pass_begin(K, passes, pass), kc = pass_begin(K, passes, pass + 1) - k0;
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t col = p * kNR<T, W>, cols = std::min<int64_t>(kNR<T, W>, N - col);
      T* block = packed + k0 * panels * kNR<T, W> + p * kc * kNR<T, W>;
      for (int64_t k = 0; k < kc; ++k) {
        const T* row = B + (k0 + k) * ldb + col;
        std::copy(row, row + cols, block + k * kNR<T, W>);
        std::fill(block + k * kNR<T, W> + cols, block + (k + 1) * kNR<T, W>, T(0));
      }
    }
  }
}

// What the GEMM writes: C rows [0, M) and their epilogue.
template <class T>
struct Output {
  T* C;
  int64_t ldc;
  const T* bias;
  const T* residual;
  bool relu;
};

// Rows [row_begin, row_end) (at most about kMC) against column panels [panel_begin, panel_end).
// Loop order: blocks of about kNC columns (so that the block of C, partial sums included, stays in
// L2 between passes), then passes over k (the pass's rows of A also stay in L2), then column
// panels (the panel's block of B stays in L1 while every row tile of A passes over it), then row
// tiles.
template <class T, int W, class Rows>
void multiply_block(const Rows& source, int64_t row_begin, int64_t row_end, int64_t N, int64_t K,
                    const T* packed, const Output<T>& out, int64_t panel_begin,
                    int64_t panel_end) {
  const int64_t panels = ceil_div(N, kNR<T, W>);
  const int64_t mine = panel_end - panel_begin;
  if (row_end <= row_begin || mine <= 0) return;
  const int64_t panels_per_block = ceil_div(mine, ceil_div(mine * kNR<T, W>, kNC));
  const int64_t passes = pass_count(K);
  // Rows dealt evenly among the fewest tiles that hold them (289 rows: 25 tiles of 11-12, not
  // 24 full tiles and one of a single row).
  const int64_t tiles = ceil_div(row_end - row_begin, kMR<W>);
  const auto tile_row = [&](int64_t t) { return row_begin + (row_end - row_begin) * t / tiles; };
  // Each tile's segments for the current pass, in a buffer that each thread keeps between calls
  // (allocated and value-initialised per call, it was 46 KB of zeros for 25 tiles).
  thread_local std::vector<Segment<T>> segment_buffer;
  thread_local std::vector<int> count_buffer;
  const size_t slots = static_cast<size_t>(tiles) * kMaxSegments;
  if (segment_buffer.size() < slots) segment_buffer.resize(slots);
  if (count_buffer.size() < static_cast<size_t>(tiles)) count_buffer.resize(tiles);
  Segment<T>* const segments = segment_buffer.data();
  int* const counts = count_buffer.data();
  for (int64_t first_panel = panel_begin; first_panel < panel_end; first_panel += panels_per_block) {
    const int64_t end_panel = std::min(panel_end, first_panel + panels_per_block);
    for (int64_t pass = 0; pass < passes; ++pass) {
      const int64_t k0 = pass_begin(K, passes, pass), k1 = pass_begin(K, passes, pass + 1);
      const int64_t kc = k1 - k0;
      for (int64_t t = 0; t < tiles; ++t) {  // where each tile's rows of A are, for this pass
        const int64_t row = tile_row(t), rows = tile_row(t + 1) - row;
        counts[t] =
            source.segments(row, static_cast<int>(rows), k0, k1, &segments[t * kMaxSegments]);
      }
      for (int64_t p = first_panel; p < end_panel; ++p) {
        const int64_t col = p * kNR<T, W>;
        const int cols = static_cast<int>(std::min<int64_t>(kNR<T, W>, N - col));
        const T* b = packed + (k0 * panels + p * kc) * kNR<T, W>;
        // The block of B that comes next, fetched into the cache a slice per row tile while this
        // one is multiplied (the weights of a network are far bigger than the caches).
        const T* next_b = nullptr;
        int64_t next_lines = 0;
        if (p + 1 < end_panel) {
          next_b = b + kc * kNR<T, W>;
          next_lines = kc * kNR<T, W> * int64_t(sizeof(T)) / 64;
        } else if (pass + 1 < passes) {
          const int64_t next_kc = pass_begin(K, passes, pass + 2) - k1;
          next_b = packed + (k1 * panels + first_panel * next_kc) * kNR<T, W>;
          next_lines = next_kc * kNR<T, W> * int64_t(sizeof(T)) / 64;
        }
        const int64_t lines_per_tile = ceil_div(next_lines, tiles);
        for (int64_t t = 0; t < tiles; ++t) {
          const int64_t row = tile_row(t);
          const int rows = static_cast<int>(tile_row(t + 1) - row);
          const int64_t first_line = std::min(next_lines, t * lines_per_tile);
          const int64_t end_line = std::min(next_lines, first_line + lines_per_tile);
          const TileEnds<T> ends{pass == 0,
                                 pass == passes - 1,
                                 out.bias ? out.bias + col : nullptr,
                                 out.residual ? out.residual + row * out.ldc + col : nullptr,
                                 out.ldc,
                                 out.relu,
                                 next_b ? reinterpret_cast<const char*>(next_b) + first_line * 64
                                        : nullptr,
                                 end_line - first_line};
          T* c = out.C + row * out.ldc + col;
          const Segment<T>* tile_segments = &segments[t * kMaxSegments];
          if (cols == kNR<T, W>) {
            tile_rows<T, W>(rows, tile_segments, counts[t], b, c, out.ldc, ends);
          } else {
            edge_tile<T, W>(rows, cols, tile_segments, counts[t], b, c, out.ldc, ends);
          }
        }
      }
    }
  }
}

// All M rows against column panels [panel_begin, panel_end), in blocks of at most kMC rows one
// after another: with more rows, a pass's rows of A would no longer stay in L2 while the column
// panels pass over them (batch 8 ran 10% slower than OpenBLAS before this; bench/RESULTS.md).
template <class T, int W, class Rows>
void multiply_panels(const Rows& source, int64_t M, int64_t N, int64_t K, const T* packed,
                     const Output<T>& out, int64_t panel_begin, int64_t panel_end) {
  const int64_t blocks = std::max<int64_t>(1, ceil_div(M, kMC));
  for (int64_t block = 0; block < blocks; ++block) {
    multiply_block<T, W>(source, M * block / blocks, M * (block + 1) / blocks, N, K, packed, out,
                         panel_begin, panel_end);
  }
}

// The whole product, on `threads` threads that share the column panels.
template <class T, int W, class Rows>
void multiply(const Rows& source, int64_t M, int64_t N, int64_t K, const T* packed,
              const Output<T>& out, int threads) {
  if (M <= 0 || N <= 0) return;
  const int64_t panels = ceil_div(N, kNR<T, W>);
  const int64_t workers = std::min<int64_t>(std::max(threads, 1), panels);
  if (workers <= 1) {
    multiply_panels<T, W>(source, M, N, K, packed, out, 0, panels);
    return;
  }
  // Two tasks per thread, claimed from the pool: a thread the OS has descheduled leaves its
  // second one to the others. (More would re-read the rows of A once more per task.)
  const int64_t tasks = std::min<int64_t>(panels, 2 * workers);
  parallel::run_tasks(tasks, [&](int64_t t, int) {
    multiply_panels<T, W>(source, M, N, K, packed, out, panels * t / tasks,
                          panels * (t + 1) / tasks);
  });
}

// The machine's width: 64 bytes where the build has AVX-512 and the processor runs a 512-bit
// multiply-add at full rate. AMD's Zen 4 splits it into two 256-bit halves, and there the 64-byte
// tiles measured no faster (bench/RESULTS.md), so AMD processors keep 32. The environment variable
// GLIMPSE_GEMM_VECTOR_BITS=256|512 overrides the choice (for comparing the two on one machine).
int choose_vector_bytes() {
  if (const char* forced = std::getenv("GLIMPSE_GEMM_VECTOR_BITS")) {
    const std::string bits = forced;
    if (bits == "256") return 32;
    if (bits == "512") return 64;
    throw std::invalid_argument("GLIMPSE_GEMM_VECTOR_BITS must be 256 or 512, not '" + bits + "'");
  }
#if defined(__AVX512F__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  return __builtin_cpu_is("amd") ? 32 : 64;
#else
  return 32;
#endif
}

int width(int vector_bytes) {
  if (vector_bytes == 0) return packed_gemm_vector_bytes();
  if (vector_bytes != 32 && vector_bytes != 64) {
    throw std::invalid_argument("packed GEMM: vector width " + std::to_string(vector_bytes) +
                                " bytes; 32 or 64 are built");
  }
  return vector_bytes;
}

// Calls f(std::integral_constant<int, W>{}) with W the width asked for (0: the machine's), so each
// entry point below names its work once for both widths.
template <class F>
decltype(auto) with_width(int vector_bytes, F&& f) {
  if (width(vector_bytes) == 64) return f(std::integral_constant<int, 64>{});
  return f(std::integral_constant<int, 32>{});
}

}  // namespace

int packed_gemm_vector_bytes() {
  static const int chosen = choose_vector_bytes();
  return chosen;
}

template <class T>
int64_t packed_b_size(int64_t K, int64_t N, int vector_bytes) {
  return with_width(vector_bytes,
                    [&](auto w) { return packed_size<T, decltype(w)::value>(K, N); });
}

template <class T>
void pack_b(const T* B, int64_t ldb, int64_t K, int64_t N, T* packed, int vector_bytes) {
  with_width(vector_bytes, [&](auto w) { pack<T, decltype(w)::value>(B, ldb, K, N, packed); });
}

template <class T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* packed,
                   T* C, int64_t ldc, const T* bias, const T* residual, bool relu, int threads,
                   int vector_bytes) {
  const MatrixRows<T> rows{A, lda};
  const Output<T> out{C, ldc, bias, residual, relu};
  with_width(vector_bytes, [&](auto w) {
    multiply<T, decltype(w)::value>(rows, M, N, K, packed, out, threads);
  });
}

// ConvRows reads a window row's cells as one run, which a dilated window is not.
bool conv_packed_supported(const Conv2dGeometry& g) {
  return g.C >= kMinSegment && g.DH == 1 && g.DW == 1;
}

template <class T>
void conv_packed(const T* x, const Conv2dGeometry& g, int64_t first_pixel, int64_t pixels,
                 int64_t N, const T* packed, T* C, int64_t ldc, const T* bias, const T* residual,
                 bool relu, int threads, int vector_bytes) {
  if (!conv_packed_supported(g)) {  // a pass would need more segments than a tile has room for
    throw std::invalid_argument("conv_packed: " + std::to_string(g.C) +
                                " input channels is fewer than " + std::to_string(kMinSegment) +
                                "; build the patches instead");
  }
  if (pixels <= 0 || N <= 0) return;
  const std::vector<T> zeros(g.C, T(0));
  // In chunks of pixels, so that the per-pixel window positions stay a small allocation (a large
  // one would be mapped afresh, and page-faulted in, on every call).
  constexpr int64_t kChunkPixels = 4096;
  with_width(vector_bytes, [&](auto w) {
    for (int64_t done = 0; done < pixels; done += kChunkPixels) {
      const int64_t count = std::min(kChunkPixels, pixels - done);
      const ConvRows<T> source(x, zeros.data(), g, first_pixel + done, count);
      const Output<T> out{C + done * ldc, ldc, bias, residual ? residual + done * ldc : nullptr,
                          relu};
      multiply<T, decltype(w)::value>(source, count, N, g.KH * g.KW * g.C, packed, out, threads);
    }
  });
}

#define GLIMPSE_PACKED_GEMM(T)                                                                  \
  template int64_t packed_b_size<T>(int64_t, int64_t, int);                                     \
  template void pack_b<T>(const T*, int64_t, int64_t, int64_t, T*, int);                        \
  template void gemm_packed_b<T>(int64_t, int64_t, int64_t, const T*, int64_t, const T*, T*,   \
                                 int64_t, const T*, const T*, bool, int, int);                 \
  template void conv_packed<T>(const T*, const Conv2dGeometry&, int64_t, int64_t, int64_t,     \
                               const T*, T*, int64_t, const T*, const T*, bool, int, int);
GLIMPSE_PACKED_GEMM(float)
GLIMPSE_PACKED_GEMM(double)
#undef GLIMPSE_PACKED_GEMM

}  // namespace glimpse::cpu
