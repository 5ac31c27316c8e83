// Error checking for the CUDA backend: every CUDA runtime and cuBLAS call goes through one of these
// macros, and every kernel launch is followed by GLIMPSE_CUDA_CHECK_LAUNCH(name). A failure throws
// std::runtime_error naming the failed call, the file:line it was made from, and CUDA's own words.
//
// Kernel faults (an illegal address, say) are reported asynchronously by CUDA: they surface at the
// next checked call, which is then the file:line in the message. compute-sanitizer pins them down.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace glimpse::cuda::detail {

[[noreturn]] void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
void check_launch(const char* kernel, const char* file, int line);

}  // namespace glimpse::cuda::detail

#define GLIMPSE_CUDA_CHECK(call)                                                                 \
  do {                                                                                           \
    const cudaError_t glimpse_cuda_error_ = (call);                                              \
    if (glimpse_cuda_error_ != cudaSuccess) {                                                    \
      ::glimpse::cuda::detail::throw_cuda_error(glimpse_cuda_error_, #call, __FILE__, __LINE__); \
    }                                                                                            \
  } while (0)

#define GLIMPSE_CUBLAS_CHECK(call)                                                         \
  do {                                                                                     \
    const cublasStatus_t glimpse_cublas_status_ = (call);                                  \
    if (glimpse_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                 \
      ::glimpse::cuda::detail::throw_cublas_error(glimpse_cublas_status_, #call, __FILE__, \
                                                  __LINE__);                               \
    }                                                                                      \
  } while (0)

// A launch itself returns nothing; a bad configuration (too many threads, too much shared memory)
// is only visible through cudaGetLastError right after it. `kernel` names what was launched.
#define GLIMPSE_CUDA_CHECK_LAUNCH(kernel) \
  ::glimpse::cuda::detail::check_launch(kernel, __FILE__, __LINE__)
