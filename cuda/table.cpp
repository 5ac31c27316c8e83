// Assembles the CUDA backend's DeviceApi and Kernels<float> tables from the kernel files, and
// registers them with tensor/'s kernel table at program start (the static `registered` below), so
// that kernels_f32(Device::CUDA) finds them without tensor/ knowing this folder exists.
// The field order is that of tensor/kernels.h; every entry is filled (a missing one would be a
// null pointer that only fails when called).
#include "cuda/allocator.h"
#include "cuda/backend.h"
#include "cuda/kernel_decls.h"

namespace glimpse::cuda {

const DeviceApi& device_api() {
  static const DeviceApi api{
      .alloc = detail::allocate,
      .free = detail::deallocate,
      .copy_to_host = detail::copy_to_host,
      .copy_from_host = detail::copy_from_host,
      .copy_on_device = detail::copy_on_device,
      .synchronize = detail::synchronize,
      .copy_strided = detail::copy_strided,
      .fill_i32 = detail::fill_i32,
  };
  return api;
}

const Kernels<float>& kernels_f32() {
  static const Kernels<float> table{
      .fill = detail::fill,
      .cast_from_i32 = detail::cast_from_i32,
      .cast_to_i32 = detail::cast_to_i32,
      .axpy = detail::axpy,
      .copy_2d = detail::copy_2d,
      .unary = detail::unary,
      .unary_backward = detail::unary_backward,
      .binary = detail::binary,
      .binary_backward = detail::binary_backward,
      .where = detail::where,
      .reduce_sum = detail::reduce_sum,
      .reduce_prod = detail::reduce_prod,
      .reduce_prod_backward = detail::reduce_prod_backward,
      .reduce_max = detail::reduce_max,
      .reduce_max_backward = detail::reduce_max_backward,
      .gemm = detail::gemm,
      .gemm_strided_batched = detail::gemm_strided_batched,
      .softmax = detail::softmax,
      .softmax_backward = detail::softmax_backward,
      .cross_entropy = detail::cross_entropy,
      .cross_entropy_backward = detail::cross_entropy_backward,
      .layer_norm = detail::layer_norm,
      .layer_norm_backward = detail::layer_norm_backward,
      .batch_norm_stats = detail::batch_norm_stats,
      .batch_norm_forward = detail::batch_norm_forward,
      .batch_norm_backward = detail::batch_norm_backward,
      .gather_rows = detail::gather_rows,
      .scatter_add_rows = detail::scatter_add_rows,
      .im2col = detail::im2col,
      .col2im = detail::col2im,
      .max_pool = detail::max_pool,
      .max_pool_backward = detail::max_pool_backward,
      .avg_pool = detail::avg_pool,
      .avg_pool_backward = detail::avg_pool_backward,
      .dropout_mask = detail::dropout_mask,
      .gru_step = detail::gru_step,
      .gru_step_backward = detail::gru_step_backward,
      .gru_gates_reset_before = detail::gru_gates_reset_before,
      .gru_output_reset_before = detail::gru_output_reset_before,
      .gru_output_reset_before_backward = detail::gru_output_reset_before_backward,
      .gru_gates_reset_before_backward = detail::gru_gates_reset_before_backward,
      .argmax_rows = detail::argmax_rows,
      .topk_rows = detail::topk_rows,
      .adam_update = detail::adam_update,
      .adam_update_multi = detail::adam_update_multi,
      .sgd_update = detail::sgd_update,
  };
  return table;
}

namespace {
// Runs before main. The object file survives static linking because glimpse::glimpse links this
// library as a whole archive (CMakeLists.txt); test_cuda_ops checks that it did.
[[maybe_unused]] const bool registered = register_backend(
    Device::CUDA, Backend{.name = "cuda", .device_api = device_api, .kernels_f32 = kernels_f32,
                          .device_present = device_present});
}  // namespace

}  // namespace glimpse::cuda
