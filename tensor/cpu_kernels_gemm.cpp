// CPU matrix products through Eigen's GEMM (blocked, SIMD, OpenMP-parallel by itself).
// Row-major pointers with leading dimensions are viewed as Eigen maps with an outer stride; a
// transposed operand is the same map with .transpose(), which costs nothing.
//
// When the build found OpenBLAS's OpenMP flavour (GLIMPSE_HAVE_OPENBLAS, see CMakeLists.txt),
// float products go to its cblas_sgemm instead: on the development VM its hand-written kernels
// run 1.3-1.8x faster than Eigen's (bench/RESULTS.md). The OpenMP flavour matters: it uses
// OpenMP's thread count, and runs serially inside an active parallel region (the convolution's
// panels) instead of starting threads of its own there. Double precision (gradient checks) stays
// on Eigen.
#include <Eigen/Core>

#include <algorithm>
#include <climits>
#include <type_traits>
#ifdef GLIMPSE_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "tensor/cpu_kernels_impl.h"

namespace glimpse::cpu::detail {
namespace {

template <class T>
using MatrixView =
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
               Eigen::OuterStride<>>;
template <class T>
using ConstMatrixView = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                   Eigen::Unaligned, Eigen::OuterStride<>>;

// C = alpha * lhs * rhs + beta * C. With beta == 0 the old C is never read, so garbage (even NaN)
// in an uninitialised output cannot leak into the result.
template <class T, class Lhs, class Rhs>
void scaled_product(const Lhs& lhs, const Rhs& rhs, T alpha, T beta, MatrixView<T>& c) {
  if (beta == T(0)) {
    c.noalias() = alpha * lhs * rhs;
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * lhs * rhs;
  }
}

#ifdef GLIMPSE_HAVE_OPENBLAS
// cblas rejects (with a message, computing nothing) leading dimensions below the stored row
// length, which Eigen accepts for a single row or column; and it counts in int. Such calls stay
// on Eigen.
bool cblas_accepts(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                   int64_t ldb, int64_t ldc) {
  const int64_t a_row = trans_a ? M : K, b_row = trans_b ? K : N;
  const bool strides_ok = lda >= std::max<int64_t>(1, a_row) && ldb >= std::max<int64_t>(1, b_row) &&
                          ldc >= std::max<int64_t>(1, N);
  const int64_t largest = std::max({M, N, K, lda, ldb, ldc});
  return strides_ok && largest <= INT_MAX;
}
#endif

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef GLIMPSE_HAVE_OPENBLAS
  if constexpr (std::is_same_v<T, float>) {
    // Outside a parallel region OpenBLAS splits the product over the threads itself, which on
    // the development VM lost to Eigen for skinny products (N = 32 at two threads: 0.6x); those
    // stay on Eigen. Inside a region it runs serially and won for every shape measured.
    const bool blas_is_faster = omp_in_parallel() || std::min(M, N) >= 64;
    if (K > 0 && blas_is_faster && cblas_accepts(trans_a, trans_b, M, N, K, lda, ldb, ldc)) {
      // With beta == 0 OpenBLAS zero-fills C before accumulating; it never reads the old values.
      cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                  static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
                  static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
      return;
    }
  }
#endif
  MatrixView<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {  // an empty sum: C = beta * C
    if (beta == T(0)) {
      c.setZero();
    } else {
      c *= beta;
    }
    return;
  }
  // Stored shapes: A is [M, K] or, transposed, [K, M]; B is [K, N] or [N, K].
  ConstMatrixView<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  ConstMatrixView<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) {
    scaled_product(a, b, alpha, beta, c);
  } else if (!trans_a && trans_b) {
    scaled_product(a, b.transpose(), alpha, beta, c);
  } else if (trans_a && !trans_b) {
    scaled_product(a.transpose(), b, alpha, beta, c);
  } else {
    scaled_product(a.transpose(), b.transpose(), alpha, beta, c);
  }
}

template <class T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                          const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                          int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
                          int64_t batch) {
  // Many small products (attention scores: batch x [T, T]): one product per thread, each
  // single-threaded (Eigen stays serial inside an active parallel region). Few or large products:
  // one after another, each parallelised by Eigen.
  constexpr int64_t kSmallProductFlops = 64 * 64 * 64;
  const int64_t flops = M * N * K;
  const bool parallel_over_batch = batch >= 2 && flops <= kSmallProductFlops &&
                                   batch * flops >= kParallelGrain;
#pragma omp parallel for schedule(static) if (parallel_over_batch)
  for (int64_t i = 0; i < batch; ++i) {
    gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
         C + i * stride_c, ldc);
  }
}

}  // namespace

template <class T>
void add_gemm_kernels(Kernels<T>& table) {
  table.gemm = gemm<T>;
  table.gemm_strided_batched = gemm_strided_batched<T>;
}

template void add_gemm_kernels<float>(Kernels<float>&);
template void add_gemm_kernels<double>(Kernels<double>&);

}  // namespace glimpse::cpu::detail
