// The caching allocator behind every CPU tensor's Storage (the CPU twin of cuda/allocator.cpp).
//
// A forward pass allocates and frees the same large sizes over and over. glibc hands blocks above
// its mmap threshold (up to 32 MB) straight to the kernel and unmaps them on free, so each such
// activation was page-faulted in again on every op (about 275,000 faults per Inception-ResNet-v2
// forward at batch 8). So freed blocks of 64 KiB and more are kept in free lists keyed by a rounded
// "bucket" size and handed out again for any request that rounds to the same bucket; smaller
// blocks go to malloc, which already recycles them without system calls.
//
// The cache holds at most a limit of freed memory (4 GiB, or GLIMPSE_CPU_CACHE_LIMIT_MB); a freed
// block beyond it goes back to the system. An allocation that fails releases the cache and
// tries once more. GLIMPSE_CPU_NO_CACHE=1 turns caching off (every block malloc'ed at its exact
// size and freed at once). Under AddressSanitizer cached blocks and the rounding slack of handed-out
// blocks are poisoned, so use-after-free and small overruns are still reported with the cache on.
#pragma once
#include <cstddef>
#include <cstdint>

namespace glimpse::cpu {

struct CpuMemoryStats {
  size_t bytes_in_use = 0;       // cached-size blocks handed out and not yet freed (bucket sizes)
  size_t bytes_cached = 0;       // freed, kept for reuse
  size_t peak_bytes_in_use = 0;  // highest bytes_in_use since start or reset_peak_cpu_memory()
  uint64_t system_allocs = 0;    // cached-size blocks taken from the system (cache misses)
  uint64_t cache_hits = 0;       // allocations served from the cache
};

// Storage's entry points. `bytes` passed to free must be the size passed to allocate.
void* cached_allocate(size_t bytes);
void cached_free(void* ptr, size_t bytes);

CpuMemoryStats cpu_memory_stats();
// Returns every cached block to the system. Blocks in use are untouched.
void release_cpu_cached_memory();
void reset_peak_cpu_memory();
bool cpu_caching_enabled();

}  // namespace glimpse::cpu
