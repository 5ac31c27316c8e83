// The size classes of the caching allocators (CPU: tensor/cpu/allocator.cpp, CUDA:
// cuda/allocator.cpp). A freed block is cached under its class and handed out again for any
// request of the same class, so classes must be few enough to be reused and fine enough not to
// waste much: multiples of `small_step` up to `large_threshold`, then 8 classes per power of two
// (a request is rounded up by at most 1/8 = 12.5%).
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace glimpse {

struct SizeClasses {
  size_t small_step;       // a power of two
  size_t large_threshold;  // a power of two, >= small_step
  const char* owner;       // for the error message: "cpu alloc", "cuda alloc"

  static constexpr size_t kStepsPerPowerOfTwo = 8;

  // The class of a request of `bytes`: the size actually allocated and cached (never 0).
  size_t round(size_t bytes) const {
    if (bytes <= large_threshold) return bytes == 0 ? small_step : round_up(bytes, small_step);
    if (bytes > (size_t(1) << 62))
      throw std::runtime_error(std::string(owner) + ": request of " + std::to_string(bytes) +
                               " bytes is too large");
    size_t power_of_two = large_threshold;
    while (power_of_two * 2 <= bytes) power_of_two *= 2;
    return round_up(bytes, power_of_two / kStepsPerPowerOfTwo);
  }

 private:
  static size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }
};

}  // namespace glimpse
