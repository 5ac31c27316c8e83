// Private to the CUDA backend: every kernel entry point, grouped by the file that defines it.
// table.cpp puts them into the Kernels<float> and DeviceApi tables; the contracts are the comments
// in tensor/kernels.h. All pointers are device pointers; all work goes on the backend's stream.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/kernels.h"

namespace glimpse::cuda::detail {

// device_api.cu: memory copies and the untyped helpers of DeviceApi.
void copy_to_host(void* host_dst, const void* dev_src, size_t bytes);
void copy_from_host(void* dev_dst, const void* host_src, size_t bytes);
void copy_on_device(void* dst, const void* src, size_t bytes);
void synchronize();
void copy_strided(const void* x, size_t elem_size, const StridedLayout& layout, void* y);
void fill_i32(int32_t* y, int64_t n, int32_t value);

// elementwise.cu
void fill(float* y, int64_t n, float value);
void cast_from_i32(const int32_t* x, float* y, int64_t n);
void cast_to_i32(const float* x, int32_t* y, int64_t n);
void axpy(int64_t n, float alpha, const float* x, float* y);
void copy_2d(const float* src, int64_t src_ld, float* dst, int64_t dst_ld, int64_t rows,
             int64_t cols);
void unary(UnaryOp op, const float* x, float* y, int64_t n, float param);
void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx,
                    int64_t n, float param);
void binary(BinaryOp op, const float* a, const float* b, float* y, const BroadcastLayout& layout);
void binary_backward(BinaryOp op, const float* a, const float* b, const float* y, const float* gy,
                     float* ga, float* gb, const BroadcastLayout& layout);
void where(const float* cond, const float* a, const float* b, float* y, int64_t n);

// reduce.cu
void reduce_sum(const float* x, float* y, int64_t outer, int64_t R, int64_t inner);
void reduce_prod(const float* x, float* y, int64_t outer, int64_t R, int64_t inner);
void reduce_prod_backward(const float* x, const float* gy, float* gx, int64_t outer, int64_t R,
                          int64_t inner);
void reduce_max(const float* x, float* y, int32_t* argmax, int64_t outer, int64_t R, int64_t inner);
void reduce_max_backward(const float* gy, const int32_t* argmax, float* gx, int64_t outer,
                         int64_t R, int64_t inner);
void argmax_rows(const float* x, int32_t* idx, int64_t rows, int64_t cols);
void topk_rows(const float* x, float* values, int32_t* idx, int64_t rows, int64_t cols, int64_t k);

// gemm.cu
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, int64_t stride_a, const float* B,
                          int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
                          int64_t stride_c, int64_t batch);

// softmax_loss.cu
void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log);
void softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols,
                      bool log);
void cross_entropy(const float* logits, const int32_t* targets, float* loss, float* valid,
                   int64_t rows, int64_t cols, int32_t ignore_index);
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* gloss,
                            float* glogits, int64_t rows, int64_t cols, int32_t ignore_index);

// norm.cu
void layer_norm(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                float* rstd, int64_t rows, int64_t cols, float eps);
void layer_norm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* ggamma, float* gbeta, int64_t rows,
                         int64_t cols);
void batch_norm_stats(const float* x, float* mean, float* var, int64_t N, int64_t C);
void batch_norm_forward(const float* x, const float* mean, const float* var, const float* gamma,
                        const float* beta, float* y, int64_t N, int64_t C, float eps);
void batch_norm_backward(const float* x, const float* mean, const float* var, const float* gamma,
                         const float* gy, float* gx, float* ggamma, float* gbeta, int64_t N,
                         int64_t C, float eps, bool training);

// embedding.cu
void gather_rows(const float* table, int64_t n_rows, const int32_t* idx, float* out,
                 int64_t n_idx, int64_t row_size);
void scatter_add_rows(const float* gout, const int32_t* idx, float* gtable, int64_t n_rows,
                      int64_t n_idx, int64_t row_size);

// conv_pool.cu
void im2col(const float* x, float* cols, const Conv2dGeometry& g);
void col2im(const float* cols, float* gx, const Conv2dGeometry& g);
void max_pool(const float* x, float* y, int32_t* argmax, const Conv2dGeometry& g);
void max_pool_backward(const float* gy, const int32_t* argmax, float* gx, const Conv2dGeometry& g);
void avg_pool(const float* x, float* y, const Conv2dGeometry& g);
void avg_pool_backward(const float* gy, float* gx, const Conv2dGeometry& g);

// gru.cu
void gru_step(const float* xp, const float* hp, const float* h_prev, float* h_new, float* gates,
              int64_t B, int64_t U);
void gru_step_backward(const float* gh, const float* gates, const float* hp, const float* h_prev,
                       float* dxp, float* dhp, float* dh_prev, int64_t B, int64_t U);
void gru_gates_reset_before(const float* xp, const float* hp, const float* h_prev, float* gates,
                            float* rh, int64_t B, int64_t U);
void gru_output_reset_before(const float* xp, const float* hp, const float* h_prev, float* gates,
                             float* h_new, int64_t B, int64_t U);
void gru_output_reset_before_backward(const float* gh, const float* gates, const float* h_prev,
                                      float* dpre, float* dh_prev, int64_t B, int64_t U);
void gru_gates_reset_before_backward(const float* drh, const float* gates, const float* h_prev,
                                     float* dpre, float* dh_prev, int64_t B, int64_t U);

// optim.cu: optimizer updates and the dropout mask.
void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t offset);
void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr_t, float b1,
                 float b2, float eps);
void adam_update_multi(float* const* w, const float* const* g, float* const* m,
                       float* const* v, const int64_t* n, int64_t count, float lr_t, float b1,
                       float b2, float eps);
void sgd_update(float* w, const float* g, float* vel, int64_t n, float lr, float momentum,
                bool nesterov);

}  // namespace glimpse::cuda::detail
