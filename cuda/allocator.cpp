// The caching device allocator behind device_api().alloc/free.
//
// cudaMalloc and cudaFree are slow (cudaFree also waits for the whole device), and a training step
// allocates and frees the same sizes over and over. So freed blocks are kept in free lists keyed by
// a rounded "bucket" size and handed out again for any request that rounds to the same bucket.
// When cudaMalloc runs out of memory, every cached block is returned to CUDA and the call is tried
// once more before giving up.
//
// Reusing a freed block right away is safe because all device work runs on one stream: whatever
// the next owner launches is queued after every kernel that used the block before.
//
// GLIMPSE_CUDA_NO_CACHE=1 turns the cache off: every block is cudaMalloc'ed at its exact size and
// cudaFree'd when freed. Slow, but compute-sanitizer then sees each tensor's true bounds (a cached,
// rounded-up block would hide a small overrun).
#include "cuda/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/backend.h"
#include "cuda/check.h"
#include "tensor/size_classes.h"

namespace glimpse::cuda {
namespace {

// Multiples of 512 bytes up to 1 MiB, then eighths of a power of two (tensor/size_classes.h).
constexpr SizeClasses kSizeClasses{.small_step = 512, .large_threshold = size_t(1) << 20,
                                   .owner = "cuda alloc"};
size_t bucket_size(size_t bytes) { return kSizeClasses.round(bytes); }

bool caching_requested() {
  const char* setting = std::getenv("GLIMPSE_CUDA_NO_CACHE");
  return setting == nullptr || std::strcmp(setting, "") == 0 || std::strcmp(setting, "0") == 0;
}

class CachingAllocator {
 public:
  bool caching() const { return caching_; }

  void* allocate(size_t bytes) {
    const size_t bucket = caching_ ? bucket_size(bytes) : std::max<size_t>(bytes, 1);
    std::lock_guard<std::mutex> lock(mutex_);
    void* ptr = nullptr;
    auto cached = free_blocks_.find(bucket);
    if (caching_ && cached != free_blocks_.end() && !cached->second.empty()) {
      ptr = cached->second.back();
      cached->second.pop_back();
      stats_.bytes_cached -= bucket;
      ++stats_.cache_hits;
    } else {
      ptr = cuda_malloc_with_retry(bucket, bytes);
      ++stats_.cuda_malloc_calls;
    }
    live_blocks_[ptr] = bucket;
    stats_.bytes_in_use += bucket;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) {
      stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }
    return ptr;
  }

  void deallocate(void* ptr) {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto live = live_blocks_.find(ptr);
    if (live == live_blocks_.end()) {
      throw std::invalid_argument(
          "cuda free: pointer was not allocated by the CUDA caching allocator (or freed twice)");
    }
    const size_t bucket = live->second;
    live_blocks_.erase(live);
    stats_.bytes_in_use -= bucket;
    if (!caching_) {
      // Not checked: free runs in destructors, where throwing would terminate. A failure here is
      // a sticky device error, which the next checked call reports.
      cudaFree(ptr);
      return;
    }
    free_blocks_[bucket].push_back(ptr);
    stats_.bytes_cached += bucket;
  }

  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 private:
  void* cuda_malloc_with_retry(size_t bucket, size_t requested) {
    void* ptr = nullptr;
    cudaError_t error = cudaMalloc(&ptr, bucket);
    if (error == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, or the next launch check would report it
      release_cached_locked();
      error = cudaMalloc(&ptr, bucket);
    }
    if (error == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw std::runtime_error(
          "cuda alloc: out of device memory allocating " + std::to_string(requested) +
          " bytes (bucket " + std::to_string(bucket) + " bytes; " +
          std::to_string(stats_.bytes_in_use) + " bytes in use, cache already released)");
    }
    GLIMPSE_CUDA_CHECK(error);
    return ptr;
  }

  void release_cached_locked() {
    if (stats_.bytes_cached == 0) return;
    // A cached block may still be read by queued kernels of its previous owner.
    GLIMPSE_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [bucket, blocks] : free_blocks_) {
      for (void* ptr : blocks) GLIMPSE_CUDA_CHECK(cudaFree(ptr));
      stats_.bytes_cached -= bucket * blocks.size();
      blocks.clear();
    }
    free_blocks_.clear();
  }

  const bool caching_ = caching_requested();
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;  // bucket size -> cached blocks
  std::unordered_map<void*, size_t> live_blocks_;               // handed out -> bucket size
  MemoryStats stats_;
};

// Never destroyed: tensors released during static destruction may still call free, and CUDA
// itself may already be shut down by then (the driver reclaims the memory at exit).
CachingAllocator& caching_allocator() {
  static CachingAllocator* const instance = new CachingAllocator();
  return *instance;
}

}  // namespace

namespace detail {
void* allocate(size_t bytes) { return caching_allocator().allocate(bytes); }
void deallocate(void* ptr) { caching_allocator().deallocate(ptr); }
}  // namespace detail

MemoryStats memory_stats() { return caching_allocator().stats(); }
bool caching_enabled() { return caching_allocator().caching(); }
void release_cached_memory() { caching_allocator().release_cached(); }
void reset_peak_memory() { caching_allocator().reset_peak(); }

}  // namespace glimpse::cuda
