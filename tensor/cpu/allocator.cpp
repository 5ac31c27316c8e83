// The CPU caching allocator (see cpu/allocator.h for why and what).
#include "tensor/cpu/allocator.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/cpu/backend.h"
#include "tensor/size_classes.h"

#if defined(__SANITIZE_ADDRESS__)
#define GLIMPSE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLIMPSE_ASAN 1
#endif
#endif
#ifdef GLIMPSE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace glimpse::cpu {
namespace {

// Below this, malloc's own free lists do the job (no system call, no page fault on reuse).
constexpr size_t kCachedMinimum = size_t(64) << 10;
constexpr size_t kDefaultCacheLimit = size_t(4) << 30;

// Every cached request is >= kCachedMinimum = 64 KiB, above the threshold, so its class is the
// request rounded up to an eighth of its power of two (8 KiB steps at 64 KiB, and so on).
constexpr SizeClasses kSizeClasses{.small_step = 4096, .large_threshold = kCachedMinimum / 2,
                                   .owner = "cpu alloc"};
size_t bucket_size(size_t bytes) { return kSizeClasses.round(bytes); }

bool env_flag_set(const char* name) {
  const char* setting = std::getenv(name);
  return setting != nullptr && std::strcmp(setting, "") != 0 && std::strcmp(setting, "0") != 0;
}

size_t cache_limit_from_env() {
  const char* setting = std::getenv("GLIMPSE_CPU_CACHE_LIMIT_MB");
  if (setting == nullptr || *setting == '\0') return kDefaultCacheLimit;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(setting, &end, 10);
  if (end == setting || *end != '\0')
    throw std::invalid_argument(std::string("GLIMPSE_CPU_CACHE_LIMIT_MB must be a whole number, got '") +
                                setting + "'");
  return static_cast<size_t>(mb) << 20;
}

void poison(void* ptr, size_t bytes) {
#ifdef GLIMPSE_ASAN
  ASAN_POISON_MEMORY_REGION(ptr, bytes);
#else
  (void)ptr;
  (void)bytes;
#endif
}

void unpoison(void* ptr, size_t bytes) {
#ifdef GLIMPSE_ASAN
  ASAN_UNPOISON_MEMORY_REGION(ptr, bytes);
#else
  (void)ptr;
  (void)bytes;
#endif
}

class CachingAllocator {
 public:
  bool caching() const { return caching_; }

  void* allocate(size_t bytes) {
    if (!caching_ || bytes < kCachedMinimum) return device_api().alloc(bytes);
    const size_t bucket = bucket_size(bytes);
    void* ptr = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto cached = free_blocks_.find(bucket);
      if (cached != free_blocks_.end() && !cached->second.empty()) {
        ptr = cached->second.back();
        cached->second.pop_back();
        stats_.bytes_cached -= bucket;
        ++stats_.cache_hits;
      } else {
        ptr = system_alloc_locked(bucket);
        ++stats_.system_allocs;
      }
      stats_.bytes_in_use += bucket;
      if (stats_.bytes_in_use > stats_.peak_bytes_in_use)
        stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }
    unpoison(ptr, bytes);
    poison(static_cast<char*>(ptr) + bytes, bucket - bytes);  // the rounding slack
    return ptr;
  }

  void deallocate(void* ptr, size_t bytes) {
    if (ptr == nullptr) return;
    if (!caching_ || bytes < kCachedMinimum) {
      device_api().free(ptr);
      return;
    }
    const size_t bucket = bucket_size(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.bytes_in_use -= bucket;
      if (stats_.bytes_cached + bucket <= limit_) {
        free_blocks_[bucket].push_back(ptr);
        stats_.bytes_cached += bucket;
        poison(ptr, bucket);
        return;
      }
    }
    device_api().free(ptr);  // the cache is full: back to the system
  }

  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

  CpuMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 private:
  void* system_alloc_locked(size_t bucket) {
    try {
      return device_api().alloc(bucket);
    } catch (const std::runtime_error&) {
      if (stats_.bytes_cached == 0) throw;
      release_cached_locked();  // out of memory: give the cache back and try once more
      return device_api().alloc(bucket);
    }
  }

  void release_cached_locked() {
    for (auto& [bucket, blocks] : free_blocks_) {
      for (void* ptr : blocks) {
        unpoison(ptr, bucket);
        device_api().free(ptr);
      }
      stats_.bytes_cached -= bucket * blocks.size();
    }
    free_blocks_.clear();
  }

  const bool caching_ = !env_flag_set("GLIMPSE_CPU_NO_CACHE");
  const size_t limit_ = cache_limit_from_env();
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;  // bucket size -> cached blocks
  CpuMemoryStats stats_;
};

// Never destroyed: tensors released during static destruction may still free into it.
CachingAllocator& caching_allocator() {
  static CachingAllocator* const instance = new CachingAllocator();
  return *instance;
}

}  // namespace

void* cached_allocate(size_t bytes) { return caching_allocator().allocate(bytes); }
void cached_free(void* ptr, size_t bytes) { caching_allocator().deallocate(ptr, bytes); }
CpuMemoryStats cpu_memory_stats() { return caching_allocator().stats(); }
void release_cpu_cached_memory() { caching_allocator().release_cached(); }
void reset_peak_cpu_memory() { caching_allocator().reset_peak(); }
bool cpu_caching_enabled() { return caching_allocator().caching(); }

}  // namespace glimpse::cpu
