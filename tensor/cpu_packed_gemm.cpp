// The packed-B GEMM of tensor/cpu_packed_gemm.h: layout, register tile, blocking.
#include "tensor/cpu_packed_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

namespace glimpse::cpu {
namespace {

// One 32-byte vector: 8 floats or 4 doubles (a ymm register under AVX2).
constexpr int kVectorBytes = 32;
template <class T>
constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(T));
// Tile of C: kMR rows x kNR columns, 2 * kMR accumulators. Six rows is the most that leaves
// registers for the two B vectors and the broadcast value (12 + 3 of the 16 AVX2 registers).
constexpr int kMR = 6;
template <class T>
constexpr int kNR = 2 * kLanes<T>;
// Depth of one pass over the k axis: the B panel block (kKC x kNR) is 16 KB in float, half of the
// L1 data cache here, and the tile's partial sums go through C once per pass.
constexpr int64_t kKC = 256;
// Columns per block of C: a few hundred rows of them (a thread's share of a batch-1 convolution)
// fit in L2 next to the A block.
constexpr int64_t kNC = 256;
// Rows per block of A: 192 x kKC floats is 192 KB, which L2 (512 KB here) holds next to the block of C.
constexpr int64_t kMC = 192;

template <class T>
struct VectorOf {
  typedef T type __attribute__((vector_size(kVectorBytes)));
};
template <class T>
using Vec = typename VectorOf<T>::type;

template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));  // unaligned: C and the residual rows have any alignment
  return v;
}
template <class T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof(v));
}
// Every lane x. (Not Vec<T>{} + x: without -ffast-math that is a real addition of 0, one more
// instruction per broadcast in the inner loop.)
template <class T>
inline Vec<T> broadcast(T x) {
  if constexpr (kLanes<T> == 8) {
    return Vec<T>{x, x, x, x, x, x, x, x};
  } else {
    static_assert(kLanes<T> == 4);
    return Vec<T>{x, x, x, x};
  }
}

// What a tile does besides accumulating: start from zero (first pass over k) or from the partial
// sums stored in C; on the last pass add the bias and residual and apply the ReLU.
template <class T>
struct TileEnds {
  bool first, last;
  const T* bias;      // kNR values, or null
  const T* residual;  // R rows of kNR values with stride ldr, or null
  int64_t ldr;
  bool relu;
};

// C tile [R, kNR] (+)= A rows [R, kc] (stride lda) x B panel block [kc, kNR] (contiguous).
template <class T, int R>
void tile(int64_t kc, const T* a, int64_t lda, const T* b, T* c, int64_t ldc,
          const TileEnds<T>& ends) {
  constexpr int L = kLanes<T>;
  Vec<T> lo[R], hi[R];
  if (ends.last && ends.residual) {  // needed only after the k loop: ask for it now
    for (int r = 0; r < R; ++r) __builtin_prefetch(ends.residual + r * ends.ldr);
  }
  for (int r = 0; r < R; ++r) {
    if (ends.first) {
      lo[r] = Vec<T>{};
      hi[r] = Vec<T>{};
    } else {
      lo[r] = load(c + r * ldc);
      hi[r] = load(c + r * ldc + L);
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const Vec<T> b_lo = load(b + k * kNR<T>), b_hi = load(b + k * kNR<T> + L);
    for (int r = 0; r < R; ++r) {
      const Vec<T> a_rk = broadcast(a[r * lda + k]);
      lo[r] += a_rk * b_lo;  // contracted to FMA (GCC's default)
      hi[r] += a_rk * b_hi;
    }
  }
  if (ends.last) {
    for (int r = 0; r < R; ++r) {
      if (ends.bias) {
        lo[r] += load(ends.bias);
        hi[r] += load(ends.bias + L);
      }
      if (ends.residual) {
        lo[r] += load(ends.residual + r * ends.ldr);
        hi[r] += load(ends.residual + r * ends.ldr + L);
      }
      if (ends.relu) {  // x < 0 ? 0 : x, so that NaN propagates as in the ReLU op
        lo[r] = lo[r] < Vec<T>{} ? Vec<T>{} : lo[r];
        hi[r] = hi[r] < Vec<T>{} ? Vec<T>{} : hi[r];
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    store(c + r * ldc, lo[r]);
    store(c + r * ldc + L, hi[r]);
  }
}

template <class T>
void tile_rows(int rows, int64_t kc, const T* a, int64_t lda, const T* b, T* c, int64_t ldc,
               const TileEnds<T>& ends) {
  switch (rows) {
    case 6: return tile<T, 6>(kc, a, lda, b, c, ldc, ends);
    case 5: return tile<T, 5>(kc, a, lda, b, c, ldc, ends);
    case 4: return tile<T, 4>(kc, a, lda, b, c, ldc, ends);
    case 3: return tile<T, 3>(kc, a, lda, b, c, ldc, ends);
    case 2: return tile<T, 2>(kc, a, lda, b, c, ldc, ends);
    default: return tile<T, 1>(kc, a, lda, b, c, ldc, ends);
  }
}

// A tile in the last, partial column panel (cols < kNR): computed full width in a local buffer
// (the packed panel's missing columns are zeros) and only its first `cols` columns copied out.
template <class T>
void edge_tile(int rows, int cols, int64_t kc, const T* a, int64_t lda, const T* b, T* c,
               int64_t ldc, TileEnds<T> ends) {
  T buffer[kMR * kNR<T>] = {};
  T bias[kNR<T>] = {};
  T residual[kMR * kNR<T>] = {};
  for (int r = 0; r < rows && !ends.first; ++r) std::copy(c + r * ldc, c + r * ldc + cols, buffer + r * kNR<T>);
  if (ends.last && ends.bias) {
    std::copy(ends.bias, ends.bias + cols, bias);
    ends.bias = bias;
  }
  if (ends.last && ends.residual) {
    for (int r = 0; r < rows; ++r)
      std::copy(ends.residual + r * ends.ldr, ends.residual + r * ends.ldr + cols, residual + r * kNR<T>);
    ends.residual = residual;
    ends.ldr = kNR<T>;
  }
  tile_rows(rows, kc, a, lda, b, buffer, kNR<T>, ends);
  for (int r = 0; r < rows; ++r) std::copy(buffer + r * kNR<T>, buffer + r * kNR<T> + cols, c + r * ldc);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

// Packed form: the rows of B cut into passes of kKC rows (the last may be shorter), each pass
// stored as its column panels one after another, each panel kc rows of kNR values (columns past N
// are zeros). So the panel block that a pass reads next is the next one in memory, and the
// hardware prefetcher streams a whole pass's blocks of B without a break.
template <class T>
int64_t packed_b_size(int64_t K, int64_t N) {
  return ceil_div(N, kNR<T>) * K * kNR<T>;
}

template <class T>
void pack_b(const T* B, int64_t ldb, int64_t K, int64_t N, T* packed) {
  const int64_t panels = ceil_div(N, kNR<T>);
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t col = p * kNR<T>, cols = std::min<int64_t>(kNR<T>, N - col);
      T* block = packed + k0 * panels * kNR<T> + p * kc * kNR<T>;
      for (int64_t k = 0; k < kc; ++k) {
        const T* row = B + (k0 + k) * ldb + col;
        std::copy(row, row + cols, block + k * kNR<T>);
        std::fill(block + k * kNR<T> + cols, block + (k + 1) * kNR<T>, T(0));
      }
    }
  }
}

namespace {

// One block of at most kMC rows. Loop order: blocks of about kNC columns (so that the block of C,
// partial sums included, stays in L2 between passes), then passes over k (the pass's block of A,
// rows x kKC, also stays in L2), then column panels (the panel's block of B stays in L1 while every
// row tile of A passes over it), then row tiles.
template <class T>
void multiply_block(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* packed,
                    T* C, int64_t ldc, const T* bias, const T* residual, bool relu,
                    int64_t panel_begin, int64_t panel_end) {
  const int64_t panels = ceil_div(N, kNR<T>);
  const int64_t mine = panel_end - panel_begin;
  if (M <= 0 || mine <= 0) return;
  const int64_t panels_per_block = ceil_div(mine, ceil_div(mine * kNR<T>, kNC));
  const int64_t passes = std::max<int64_t>(1, ceil_div(K, kKC));  // K = 0: one empty pass
  for (int64_t first_panel = panel_begin; first_panel < panel_end; first_panel += panels_per_block) {
    const int64_t end_panel = std::min(panel_end, first_panel + panels_per_block);
    for (int64_t pass = 0; pass < passes; ++pass) {
      const int64_t k0 = pass * kKC, kc = std::min(kKC, K - k0);
      for (int64_t p = first_panel; p < end_panel; ++p) {
        const int64_t col = p * kNR<T>;
        const int cols = static_cast<int>(std::min<int64_t>(kNR<T>, N - col));
        const T* b = packed + (k0 * panels + p * kc) * kNR<T>;
        // The block of B that comes next, fetched into the cache a slice per row tile while this
        // one is multiplied (the weights of a network are far bigger than the caches).
        const T* next_b = nullptr;
        int64_t next_lines = 0;
        if (p + 1 < end_panel) {
          next_b = b + kc * kNR<T>;
          next_lines = kc * kNR<T> * int64_t(sizeof(T)) / 64;
        } else if (pass + 1 < passes) {
          const int64_t next_k0 = k0 + kKC, next_kc = std::min(kKC, K - next_k0);
          next_b = packed + (next_k0 * panels + first_panel * next_kc) * kNR<T>;
          next_lines = next_kc * kNR<T> * int64_t(sizeof(T)) / 64;
        }
        const int64_t tiles = ceil_div(M, kMR);
        const int64_t lines_per_tile = ceil_div(next_lines, tiles);
        for (int64_t tile_index = 0, row = 0; row < M; ++tile_index, row += kMR) {
          const int rows = static_cast<int>(std::min<int64_t>(kMR, M - row));
          if (next_b) {
            const int64_t first_line = tile_index * lines_per_tile;
            const int64_t end_line = std::min(next_lines, first_line + lines_per_tile);
            const char* bytes = reinterpret_cast<const char*>(next_b);
            for (int64_t line = first_line; line < end_line; ++line) __builtin_prefetch(bytes + line * 64);
          }
          const TileEnds<T> ends{pass == 0,
                                 pass == passes - 1,
                                 bias ? bias + col : nullptr,
                                 residual ? residual + row * ldc + col : nullptr,
                                 ldc,
                                 relu};
          const T* a = A + row * lda + k0;
          T* c = C + row * ldc + col;
          if (cols == kNR<T>) {
            tile_rows(rows, kc, a, lda, b, c, ldc, ends);
          } else {
            edge_tile(rows, cols, kc, a, lda, b, c, ldc, ends);
          }
        }
      }
    }
  }
}

// Rows in blocks of at most kMC, one after another: with more rows, a pass's block of A would no
// longer stay in L2 while the column panels pass over it (batch 8 ran 10% slower than OpenBLAS
// before this; bench/RESULTS.md).
template <class T>
void multiply_panels(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* packed,
                     T* C, int64_t ldc, const T* bias, const T* residual, bool relu,
                     int64_t panel_begin, int64_t panel_end) {
  const int64_t blocks = std::max<int64_t>(1, ceil_div(M, kMC));
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t row = M * block / blocks, rows = M * (block + 1) / blocks - row;
    multiply_block(rows, N, K, A + row * lda, lda, packed, C + row * ldc, ldc, bias,
                   residual ? residual + row * ldc : nullptr, relu, panel_begin, panel_end);
  }
}

}  // namespace

template <class T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* packed,
                   T* C, int64_t ldc, const T* bias, const T* residual, bool relu, int threads) {
  if (M <= 0 || N <= 0) return;
  const int64_t panels = ceil_div(N, kNR<T>);
  const int64_t workers = std::min<int64_t>(std::max(threads, 1), panels);
  if (workers <= 1) {
    multiply_panels(M, N, K, A, lda, packed, C, ldc, bias, residual, relu, 0, panels);
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(workers))
  {
    // Shared by the threads the runtime actually gave, which may be fewer than asked for.
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    multiply_panels(M, N, K, A, lda, packed, C, ldc, bias, residual, relu, panels * t / team,
                    panels * (t + 1) / team);
  }
}

#define GLIMPSE_PACKED_GEMM(T)                                                                 \
  template int64_t packed_b_size<T>(int64_t, int64_t);                                         \
  template void pack_b<T>(const T*, int64_t, int64_t, int64_t, T*);                            \
  template void gemm_packed_b<T>(int64_t, int64_t, int64_t, const T*, int64_t, const T*, T*,  \
                                 int64_t, const T*, const T*, bool, int);
GLIMPSE_PACKED_GEMM(float)
GLIMPSE_PACKED_GEMM(double)
#undef GLIMPSE_PACKED_GEMM

}  // namespace glimpse::cpu
