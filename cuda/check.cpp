// The throwing half of cuda/check.h: turns a CUDA or cuBLAS status into a readable exception.
#include "cuda/check.h"

#include <stdexcept>
#include <string>

namespace glimpse::cuda::detail {

void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line) {
  // Most CUDA errors are also remembered as the thread's "last error"; clear it so the next
  // GLIMPSE_CUDA_CHECK_LAUNCH does not report this failure a second time. (Sticky errors, such as
  // an illegal address inside a kernel, stay: the context is unusable after them anyway.)
  cudaGetLastError();
  throw std::runtime_error(std::string("CUDA error at ") + file + ":" + std::to_string(line) +
                           ": " + call + " failed: " + cudaGetErrorName(error) + " (" +
                           cudaGetErrorString(error) + ")");
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string("cuBLAS error at ") + file + ":" + std::to_string(line) +
                           ": " + call + " failed: " + cublasGetStatusName(status) + " (" +
                           cublasGetStatusString(status) + ")");
}

void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) {
    const std::string call = std::string("launch of kernel '") + kernel + "'";
    throw_cuda_error(error, call.c_str(), file, line);
  }
}

}  // namespace glimpse::cuda::detail
