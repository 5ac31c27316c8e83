// A CPU GEMM whose right-hand matrix is packed once and reused: for a frozen convolution kernel,
// multiplied by a different left-hand side on every call (Inception-ResNet-v2 as a frozen encoder).
//
// A general GEMM (OpenBLAS's, Eigen's) copies B into its own blocked layout on every call; with the
// batch-1 convolutions split between threads, each thread copied the whole kernel for a product of
// 32-145 rows (8.6-10.3% of the forward's samples in `perf`). Here B is copied once, at fold time,
// into column panels of kNR values per row, and the product reads A where it lies: a matrix (a
// pointwise convolution's input is one), or, for a convolution with a window, the input image
// itself, each window cell's channels straight from the input pixel (an implicit GEMM: no patch
// matrix is built). The bias, the residual and the ReLU are applied to each register tile before
// it is stored, so the output is written once.
//
// Inner loop: a tile of up to kMR rows x kNR columns of C held in 2 * kMR vector registers;
// each step over k loads one row of the B panel (two vectors), broadcasts one value of each of the
// tile's A rows, and issues 2 * kMR fused multiply-adds. The k loop is cut into passes of at most
// kKC so that the B panel block (pass depth x kNR values) stays in the L1 cache while all the row
// tiles of A pass over it. Written with GCC vector extensions at two register widths, 32 bytes
// (AVX2: 6 x 16 float tiles) and 64 bytes (AVX-512: 12 x 32), chosen per machine at run time
// (packed_gemm_vector_bytes); both are correct on any target, only their speed differs.
//
// The packed form depends on the width: data packed at one width is multiplied at that width.
// Every function takes the width as its last argument, vector_bytes: 0 (the default) is the
// machine's choice; 32 or 64 force one (the tests run both).
#pragma once
#include <cstdint>

#include "tensor/kernels.h"

namespace glimpse::cpu {

// The register width, in bytes, that the packed GEMM uses on this machine (32 or 64): 64 where the
// build has AVX-512 and the processor is not an AMD one (which splits 512-bit multiply-adds in
// two); GLIMPSE_GEMM_VECTOR_BITS=256|512 in the environment overrides it. Fixed for the process.
int packed_gemm_vector_bytes();

// Number of elements of the packed form of a row-major B[K, N].
template <class T>
int64_t packed_b_size(int64_t K, int64_t N, int vector_bytes = 0);

// Writes B[K, N] (row-major, leading dimension ldb) in packed form into `packed`.
template <class T>
void pack_b(const T* B, int64_t ldb, int64_t K, int64_t N, T* packed, int vector_bytes = 0);

// C[M, N] = relu?(A[M, K] * B + bias + residual), with B in packed form. bias ([N]) and residual
// ([M, N], leading dimension ldc, like C) may be null. C is written, never read; it must not
// overlap A or the residual. With threads > 1 the columns are shared among that many of the pool's
// threads, each reading all of A and its own part of B (the split for a product with more columns
// than rows, such as a batch-1 convolution with many output channels); the result is the same.
template <class T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* packed,
                   T* C, int64_t ldc, const T* bias, const T* residual, bool relu,
                   int threads = 1, int vector_bytes = 0);

// The same product for a convolution read in place: A is the patch matrix of x [N, H, W, C] for
// geometry g (rows: output pixels; columns: (kh, kw, c), zeros over the padding), of which rows
// [first_pixel, first_pixel + pixels) are multiplied into C rows [0, pixels); B is the kernel as
// [KH*KW*C, N] in packed form; bias, residual, relu and threads as above. Only for geometries where
// conv_packed_supported (enough input channels that a window cell is a useful run of values, and
// no dilation).
bool conv_packed_supported(const Conv2dGeometry& g);
template <class T>
void conv_packed(const T* x, const Conv2dGeometry& g, int64_t first_pixel, int64_t pixels,
                 int64_t N, const T* packed, T* C, int64_t ldc, const T* bias, const T* residual,
                 bool relu, int threads = 1, int vector_bytes = 0);

}  // namespace glimpse::cpu
