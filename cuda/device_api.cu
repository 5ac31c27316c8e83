// The CUDA DeviceApi functions (copies, synchronisation, strided gathers, int32 fill), the stream
// that every kernel runs on, and the device-presence probe.
#include <stdexcept>
#include <string>

#include "cuda/backend.h"
#include "cuda/check.h"
#include "cuda/kernel_decls.h"
#include "cuda/launch.cuh"
#include "tensor/collapsed_layout.h"

namespace glimpse::cuda {
namespace {

using glimpse::detail::CollapsedLayout;
using glimpse::detail::collapse_layout;

constexpr cudaStream_t g_stream = nullptr;

template <class Word>
struct GatherStrided {
  CollapsedLayout<1> layout;
  const Word* x;
  Word* y;
  __device__ void operator()(int64_t i) const { y[i] = x[layout.offset(0, i)]; }
};

struct FillI32 {
  int32_t* y;
  int32_t value;
  __device__ void operator()(int64_t i) const { y[i] = value; }
};

}  // namespace

bool device_present() {
  static const bool present = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();  // no driver or no device: not an error for a probe
      return false;
    }
    return count > 0;
  }();
  return present;
}

cudaStream_t stream() { return g_stream; }

namespace detail {

void copy_to_host(void* host_dst, const void* dev_src, size_t bytes) {
  if (bytes == 0) return;
  GLIMPSE_CUDA_CHECK(cudaMemcpyAsync(host_dst, dev_src, bytes, cudaMemcpyDeviceToHost, stream()));
  GLIMPSE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void copy_from_host(void* dev_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  GLIMPSE_CUDA_CHECK(cudaMemcpyAsync(dev_dst, host_src, bytes, cudaMemcpyHostToDevice, stream()));
  GLIMPSE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

// Stays asynchronous: the copy is ordered on the stream like any kernel.
void copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  GLIMPSE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}

void synchronize() { GLIMPSE_CUDA_CHECK(cudaStreamSynchronize(stream())); }

void copy_strided(const void* x, size_t elem_size, const StridedLayout& layout, void* y) {
  if (layout.rank < 0 || layout.rank > kMaxRank) {
    throw std::invalid_argument("cuda device_api copy_strided: rank " +
                                std::to_string(layout.rank) + " outside [0, " +
                                std::to_string(kMaxRank) + "]");
  }
  const int64_t* const strides[1] = {layout.strides};
  const CollapsedLayout<1> collapsed = collapse_layout<1>(layout.rank, layout.shape, strides);
  // Elements move as opaque words: float and int32 share one path, double another.
  if (elem_size == 4) {
    for_each_index("copy_strided", collapsed.size(),
                   GatherStrided<uint32_t>{collapsed, static_cast<const uint32_t*>(x),
                                           static_cast<uint32_t*>(y)});
  } else if (elem_size == 8) {
    for_each_index("copy_strided", collapsed.size(),
                   GatherStrided<uint64_t>{collapsed, static_cast<const uint64_t*>(x),
                                           static_cast<uint64_t*>(y)});
  } else {
    throw std::invalid_argument("cuda device_api copy_strided: element size " +
                                std::to_string(elem_size) + " bytes is not supported (4 or 8)");
  }
}

void fill_i32(int32_t* y, int64_t n, int32_t value) {
  for_each_index("fill_i32", n, FillI32{y, value});
}

}  // namespace detail
}  // namespace glimpse::cuda
