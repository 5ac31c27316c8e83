// Maps a device to its kernel tables. The CUDA tables exist only in builds with the CUDA backend;
// asking for them elsewhere (or without a GPU) is a clear error, not a crash.
#include "tensor/kernels.h"

#include <stdexcept>

#include "tensor/cpu_kernels.h"
#ifdef GLIMPSE_WITH_CUDA
#include "cuda/backend.h"
#endif

namespace glimpse {

namespace {
[[noreturn]] void no_cuda(const char* what) {
#ifdef GLIMPSE_WITH_CUDA
  throw std::runtime_error(std::string(what) + ": no CUDA device is available on this machine");
#else
  throw std::runtime_error(std::string(what) +
                           ": this build has no CUDA backend (configure with nvcc present or "
                           "-DGLIMPSE_CUDA=ON)");
#endif
}
}  // namespace

bool cuda_available() {
#ifdef GLIMPSE_WITH_CUDA
  static const bool present = cuda::device_present();
  return present;
#else
  return false;
#endif
}

const DeviceApi& device_api(Device device) {
  if (device == Device::CPU) return cpu::device_api();
#ifdef GLIMPSE_WITH_CUDA
  if (cuda_available()) return cuda::device_api();
#endif
  no_cuda("device_api(cuda)");
}

const Kernels<float>& kernels_f32(Device device) {
  if (device == Device::CPU) return cpu::kernels_f32();
#ifdef GLIMPSE_WITH_CUDA
  if (cuda_available()) return cuda::kernels_f32();
#endif
  no_cuda("kernels_f32(cuda)");
}

const Kernels<double>& kernels_f64(Device device) {
  if (device == Device::CPU) return cpu::kernels_f64();
  throw std::runtime_error("kernels_f64(cuda): float64 kernels exist on the CPU only");
}

}  // namespace glimpse
