// Private to the CUDA backend: the caching allocator's entry points (device_api().alloc/free use
// them) and a scratch buffer for kernels that need temporary device memory.
#pragma once
#include <cstddef>
#include <cstdint>

namespace glimpse::cuda::detail {

void* allocate(size_t bytes);  // never null: throws std::runtime_error when the device is full
void deallocate(void* ptr);    // nullptr is ignored

// Temporary device memory for the kernels of one call. It may be handed back as soon as the
// kernels are *launched*: every later user of the block is queued behind them on the same stream.
template <class T>
class ScratchBuffer {
 public:
  explicit ScratchBuffer(int64_t count)
      : data_(static_cast<T*>(allocate(static_cast<size_t>(count) * sizeof(T)))) {}
  ~ScratchBuffer() { deallocate(data_); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  T* data() const { return data_; }

 private:
  T* data_;
};

}  // namespace glimpse::cuda::detail
