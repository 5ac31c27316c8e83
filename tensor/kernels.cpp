// Maps a device to its kernel tables. The CPU tables are this layer's own; other backends register
// theirs at program start (register_backend). Asking for a device whose backend is not linked in,
// or whose hardware is absent, is a clear error, not a crash.
#include "tensor/kernels.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "tensor/cpu/backend.h"

namespace glimpse {

namespace {

// One slot per non-CPU device. A function-local static: backends register from static
// initializers in other translation units, which may run before this file's globals exist.
Backend& slot(Device device) {
  static Backend slots[2];  // indexed by Device; slots[CPU] stays empty
  return slots[static_cast<int>(device)];
}

// The registered backend when its device is present, else null. Presence is asked once.
const Backend* usable(Device device) {
  const Backend& backend = slot(device);
  if (backend.device_present == nullptr) return nullptr;
  static const bool present = backend.device_present();  // only CUDA reaches here today
  return present ? &backend : nullptr;
}

[[noreturn]] void unavailable(Device device, const char* what) {
  if (!backend_linked(device))
    throw std::runtime_error(std::string(what) +
                             ": this program has no CUDA backend (configure with nvcc present or "
                             "-DGLIMPSE_CUDA=ON, and link glimpse::glimpse)");
  throw std::runtime_error(std::string(what) + ": no CUDA device is available on this machine");
}

}  // namespace

bool register_backend(Device device, const Backend& backend) {
  if (device == Device::CPU || slot(device).device_api != nullptr) {
    std::fprintf(stderr, "glimpse: a second backend (%s) registered for one device\n",
                 backend.name ? backend.name : "?");
    std::abort();
  }
  slot(device) = backend;
  return true;
}

bool backend_linked(Device device) {
  return device == Device::CPU || slot(device).device_api != nullptr;
}

bool cuda_available() { return usable(Device::CUDA) != nullptr; }

const DeviceApi& device_api(Device device) {
  if (device == Device::CPU) return cpu::device_api();
  if (const Backend* backend = usable(device)) return backend->device_api();
  unavailable(device, "device_api(cuda)");
}

const Kernels<float>& kernels_f32(Device device) {
  if (device == Device::CPU) return cpu::kernels_f32();
  if (const Backend* backend = usable(device)) return backend->kernels_f32();
  unavailable(device, "kernels_f32(cuda)");
}

const Kernels<double>& kernels_f64(Device device) {
  if (device == Device::CPU) return cpu::kernels_f64();
  throw std::runtime_error("kernels_f64(cuda): float64 kernels exist on the CPU only");
}

}  // namespace glimpse
