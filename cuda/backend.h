// The CUDA backend's public face: its kernel table, its memory functions, and the few switches a
// program may want (TF32, the stream, memory statistics). cuda/table.cpp registers the tables with
// tensor/kernels.h at program start; ops reach them as glimpse::kernels_f32(Device::CUDA).
//
// Everything runs on one CUDA stream, in launch order: kernels, cuBLAS calls and device-to-device
// copies. Copies to and from the host wait for that stream, so a host buffer is ready (or free to
// reuse) when they return. Only float kernels exist on the GPU; double is for CPU gradient checks.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "tensor/kernels.h"

namespace glimpse::cuda {

const DeviceApi& device_api();
const Kernels<float>& kernels_f32();

// True when the CUDA runtime sees at least one device. Never throws (no driver counts as false).
bool device_present();

// TF32 tensor-core math for cuBLAS GEMMs: ~8x faster on Ampere/Hopper but with a 10-bit mantissa
// on the inputs. Off by default so results match the CPU to float precision.
void set_tf32(bool enabled);
bool tf32_enabled();

// The stream every kernel, cuBLAS call and copy uses: the legacy default stream (nullptr). One
// stream keeps everything in launch order, which the caching allocator relies on when it hands a
// freed block to later work. (NCCL's collectives are enqueued on it too: dist/nccl_communicator.cpp.)
cudaStream_t stream();

// The caching allocator behind device_api().alloc/free. Freed blocks are kept in size buckets for
// reuse instead of going back to cudaFree; "cached" is memory held that way. The environment
// variable GLIMPSE_CUDA_NO_CACHE=1 turns caching off (exact-size cudaMalloc/cudaFree per tensor),
// so that compute-sanitizer sees every buffer's true bounds.
struct MemoryStats {
  size_t bytes_in_use = 0;         // handed out and not yet freed (rounded bucket sizes)
  size_t bytes_cached = 0;         // freed, kept for reuse
  size_t peak_bytes_in_use = 0;    // highest bytes_in_use since start or reset_peak_memory()
  uint64_t cuda_malloc_calls = 0;  // cudaMalloc calls made (cache misses)
  uint64_t cache_hits = 0;         // allocations served from the cache
};
MemoryStats memory_stats();
// Returns every cached block to CUDA (waits for the device first). In-use blocks are untouched.
void release_cached_memory();
void reset_peak_memory();
bool caching_enabled();

}  // namespace glimpse::cuda
