// CPU matrix products through Eigen's GEMM (blocked, SIMD).
// Row-major pointers with leading dimensions are viewed as Eigen maps with an outer stride; a
// transposed operand is the same map with .transpose(), which costs nothing.
//
// When the build found OpenBLAS's OpenMP flavour (GLIMPSE_HAVE_OPENBLAS, see CMakeLists.txt),
// float products go to its cblas_sgemm instead: on the development VM its hand-written kernels
// run 1.3-1.8x faster than Eigen's (bench/RESULTS.md). Double precision (gradient checks) stays
// on Eigen.
//
// Threads: neither library threads a product here. A large product is cut into blocks of whole
// rows (or columns) of C that the pool (tensor/parallel.h) hands out as tasks, each one a serial
// GEMM; so there is one set of threads for the whole backend, and a descheduled thread's blocks
// are taken by the others. Every element of C is still one serial dot product over all of K, in
// the library's order, so the thread count does not change the result.
#include "tensor/cpu/eigen.h"

#include <algorithm>
#include <climits>
#include <type_traits>
#ifdef GLIMPSE_HAVE_OPENBLAS
#include <cblas.h>
#include <omp.h>
#endif

#include "tensor/cpu/kernels_impl.h"

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

#ifdef GLIMPSE_HAVE_OPENBLAS
// OpenBLAS's OpenMP flavour starts an OpenMP team of its own for a call made outside an OpenMP
// region when the calling thread's OpenMP thread count is above one; the pool's threads are never
// inside an OpenMP region. So every thread that calls it is set, once, to one OpenMP thread.
void keep_blas_serial_on_this_thread() {
  thread_local bool done = false;
  if (!done) {
    omp_set_num_threads(1);
    done = true;
  }
}
#endif

// C = alpha op(A) op(B) + beta C on the calling thread.
template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef GLIMPSE_HAVE_OPENBLAS
  if constexpr (std::is_same_v<T, float>) {
    // Serial OpenBLAS beat serial Eigen for every shape measured (bench/RESULTS.md).
    if (K > 0 && cblas_accepts(trans_a, trans_b, M, N, K, lda, ldb, ldc)) {
      keep_blas_serial_on_this_thread();
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

// Products with fewer multiply-adds than this run on one thread: splitting costs more than it saves.
constexpr int64_t kParallelGemmMadds = 64 * 64 * 64;
// A block is at least this many rows (or columns) of C, a multiple of this alignment: smaller
// blocks would spend more of their time packing the shared operand than multiplying.
constexpr int64_t kMinGemmBlock = 64;
constexpr int64_t kGemmBlockAlign = 16;

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t threads = parallel::num_threads();
  // Split the longer side of C: rows of C are rows of op(A); columns are columns of op(B).
  const bool split_rows = M >= N;
  const int64_t extent = split_rows ? M : N;
  const int64_t blocks = std::min(extent / kMinGemmBlock, kTasksPerThread / 2 * threads);
  if (threads == 1 || parallel::in_parallel_region() || blocks < 2 ||
      M * N * std::max<int64_t>(K, 1) < kParallelGemmMadds) {
    gemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  auto boundary = [&](int64_t b) {
    return b == blocks ? extent : extent * b / blocks / kGemmBlockAlign * kGemmBlockAlign;
  };
  parallel::run_tasks(blocks, [&](int64_t b, int) {
    const int64_t begin = boundary(b), size = boundary(b + 1) - begin;
    if (size <= 0) return;
    if (split_rows) {  // rows [begin, begin + size) of C and of op(A)
      gemm_serial(trans_a, trans_b, size, N, K, alpha, trans_a ? A + begin : A + begin * lda, lda,
                  B, ldb, beta, C + begin * ldc, ldc);
    } else {  // columns [begin, begin + size) of C and of op(B)
      gemm_serial(trans_a, trans_b, M, size, K, alpha, A, lda, trans_b ? B + begin * ldb : B + begin,
                  ldb, beta, C + begin, ldc);
    }
  });
}

template <class T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                          const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                          int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
                          int64_t batch) {
  // Many small products (attention scores: batch x [T, T]): one product per thread, each
  // single-threaded (a product inside a task is not split again). Few or large products:
  // one after another, each split over the threads.
  constexpr int64_t kSmallProductFlops = 64 * 64 * 64;
  const int64_t flops = M * N * K;
  const bool parallel_over_batch = batch >= 2 && flops <= kSmallProductFlops &&
                                   batch * flops >= kParallelGrain;
  for_each_index(batch, parallel_over_batch, [&](int64_t i) {
    gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
         C + i * stride_c, ldc);
  });
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
