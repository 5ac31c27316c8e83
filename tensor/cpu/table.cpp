// The CPU backend's memory functions and the assembly of its kernel tables. The kernels themselves
// live beside this file: elementwise.cpp, reduce.cpp, gemm.cpp, conv_pool.cpp and nn.cpp, as the
// CUDA backend's do in cuda/.
#include "tensor/cpu/backend.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tensor/cpu/kernels_impl.h"

namespace glimpse::cpu {
namespace {

// 64-byte alignment: a cache line, and the widest SIMD load (AVX-512).
constexpr size_t kAlignment = 64;

void* cpu_alloc(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; a zero-byte tensor still gets a real pointer.
  const size_t rounded = bytes == 0 ? kAlignment : (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < bytes) {
    throw std::runtime_error("cpu device_api alloc: size overflow for " + std::to_string(bytes) +
                             " bytes");
  }
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  if (ptr == nullptr) {
    throw std::runtime_error("cpu device_api alloc: out of memory allocating " +
                             std::to_string(bytes) + " bytes");
  }
  return ptr;
}

void cpu_free(void* ptr) { std::free(ptr); }

void cpu_copy(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void cpu_synchronize() {}

template <class Word>
void gather_strided(const Word* x, const StridedLayout& layout, Word* y) {
  const int64_t* const strides[1] = {layout.strides};
  const auto collapsed = detail::collapse_layout<1>(layout.rank, layout.shape, strides);
  const int64_t row_length = collapsed.shape[collapsed.rank - 1];
  const int64_t step = collapsed.strides[0][collapsed.rank - 1];
  detail::parallel_walk_rows(
      collapsed, [&](int64_t row, const int64_t* offsets, int64_t begin, int64_t end) {
        const Word* src = x + offsets[0] + begin * step;
        Word* dst = y + row * row_length + begin;
        if (step == 1) {
          std::memcpy(dst, src, (end - begin) * sizeof(Word));
        } else {
          for (int64_t i = 0; i < end - begin; ++i) dst[i] = src[i * step];
        }
      });
}

void cpu_copy_strided(const void* x, size_t elem_size, const StridedLayout& layout, void* y) {
  if (layout.rank < 0 || layout.rank > kMaxRank) {
    throw std::invalid_argument("cpu device_api copy_strided: rank " + std::to_string(layout.rank) +
                                " outside [0, " + std::to_string(kMaxRank) + "]");
  }
  // Elements are moved as opaque words, so float/int32 share one path and double another.
  if (elem_size == 4) {
    gather_strided(static_cast<const uint32_t*>(x), layout, static_cast<uint32_t*>(y));
  } else if (elem_size == 8) {
    gather_strided(static_cast<const uint64_t*>(x), layout, static_cast<uint64_t*>(y));
  } else {
    throw std::invalid_argument("cpu device_api copy_strided: element size " +
                                std::to_string(elem_size) + " bytes is not supported (4 or 8)");
  }
}

void cpu_fill_i32(int32_t* y, int64_t n, int32_t value) {
  detail::for_each_chunk(n, [&](int64_t begin, int64_t end) { std::fill(y + begin, y + end, value); });
}

template <class T>
Kernels<T> make_kernels() {
  Kernels<T> table{};
  detail::add_elementwise_kernels(table);
  detail::add_reduction_kernels(table);
  detail::add_gemm_kernels(table);
  detail::add_conv_kernels(table);
  detail::add_nn_kernels(table);
  return table;
}

}  // namespace

const DeviceApi& device_api() {
  static const DeviceApi api{
      .alloc = cpu_alloc,
      .free = cpu_free,
      .copy_to_host = cpu_copy,
      .copy_from_host = cpu_copy,
      .copy_on_device = cpu_copy,
      .synchronize = cpu_synchronize,
      .copy_strided = cpu_copy_strided,
      .fill_i32 = cpu_fill_i32,
  };
  return api;
}

const Kernels<float>& kernels_f32() {
  static const Kernels<float> table = make_kernels<float>();
  return table;
}

const Kernels<double>& kernels_f64() {
  static const Kernels<double> table = make_kernels<double>();
  return table;
}

}  // namespace glimpse::cpu
