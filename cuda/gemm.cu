// GEMMs through cuBLAS, with the row-major contract of tensor/kernels.h, and the TF32 switch.
//
// cuBLAS is column-major. A row-major M x N matrix with leading dimension ld is, byte for byte, the
// column-major N x M matrix of its transpose with the same ld. So the row-major product
// C = op(A) op(B) is computed as the column-major product C^T = op(B)^T op(A)^T: cuBLAS receives B
// first and A second, with M and N swapped, and each transpose flag stays with its own matrix.
#include <climits>
#include <stdexcept>
#include <string>

#include "cuda/backend.h"
#include "cuda/check.h"
#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"

namespace glimpse::cuda {
namespace {

bool g_tf32_enabled = false;

// One handle for the process, created on first use and never destroyed (destroying it during
// static destruction could run after the CUDA runtime has shut down).
cublasHandle_t cublas_handle() {
  static const cublasHandle_t handle = [] {
    cublasHandle_t created = nullptr;
    GLIMPSE_CUBLAS_CHECK(cublasCreate(&created));
    return created;
  }();
  GLIMPSE_CUBLAS_CHECK(cublasSetStream(handle, stream()));
  return handle;
}

cublasComputeType_t compute_type() {
  return g_tf32_enabled ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

cublasOperation_t op_of(bool transposed) { return transposed ? CUBLAS_OP_T : CUBLAS_OP_N; }

int checked_int(int64_t value, const char* what, const char* function) {
  if (value < 0 || value > INT_MAX) {
    throw std::invalid_argument(std::string("cuda ") + function + ": " + what + " = " +
                                std::to_string(value) + " is outside cuBLAS's 32-bit range");
  }
  return static_cast<int>(value);
}

// With K == 0 the product is empty and C = beta * C. cuBLAS is not asked: its leading-dimension
// checks can reject the degenerate shapes. As in BLAS, beta == 0 writes zeros without reading C.
struct ScaleMatrices {
  float* C;
  int64_t ldc;
  int64_t stride_c;
  int64_t M;
  int64_t N;
  float beta;
  __device__ void operator()(int64_t i) const {
    const int64_t batch = i / (M * N);
    const int64_t r = (i / N) % M;
    const int64_t c = i % N;
    float& out = C[batch * stride_c + r * ldc + c];
    out = beta == 0.0f ? 0.0f : beta * out;
  }
};

}  // namespace

void set_tf32(bool enabled) { g_tf32_enabled = enabled; }
bool tf32_enabled() { return g_tf32_enabled; }

namespace detail {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for_each_index("gemm (K = 0)", M * N, ScaleMatrices{C, ldc, 0, M, N, beta});
    return;
  }
  constexpr const char* kName = "gemm";
  GLIMPSE_CUBLAS_CHECK(cublasGemmEx(
      cublas_handle(), op_of(trans_b), op_of(trans_a), checked_int(N, "N", kName),
      checked_int(M, "M", kName), checked_int(K, "K", kName), &alpha, B, CUDA_R_32F,
      checked_int(ldb, "ldb", kName), A, CUDA_R_32F, checked_int(lda, "lda", kName), &beta, C,
      CUDA_R_32F, checked_int(ldc, "ldc", kName), compute_type(), CUBLAS_GEMM_DEFAULT));
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, int64_t stride_a, const float* B,
                          int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
                          int64_t stride_c, int64_t batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) {
    for_each_index("gemm_strided_batched (K = 0)", batch * M * N,
                   ScaleMatrices{C, ldc, stride_c, M, N, beta});
    return;
  }
  constexpr const char* kName = "gemm_strided_batched";
  GLIMPSE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas_handle(), op_of(trans_b), op_of(trans_a), checked_int(N, "N", kName),
      checked_int(M, "M", kName), checked_int(K, "K", kName), &alpha, B, CUDA_R_32F,
      checked_int(ldb, "ldb", kName), stride_b, A, CUDA_R_32F, checked_int(lda, "lda", kName),
      stride_a, &beta, C, CUDA_R_32F, checked_int(ldc, "ldc", kName), stride_c,
      checked_int(batch, "batch", kName), compute_type(), CUBLAS_GEMM_DEFAULT));
}

}  // namespace detail
}  // namespace glimpse::cuda
