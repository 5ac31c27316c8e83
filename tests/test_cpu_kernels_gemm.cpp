// CPU backend: GEMM (all transpose combinations, alpha/beta, padded leading dimensions), strided
// batched GEMM, and the DeviceApi memory functions (alloc, copies, copy_strided, fill_i32).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <limits>
#include <stdexcept>

#include "test_cpu_kernels_util.h"

using namespace glimpse;
using namespace glimpse::test;

namespace {

// Reference: C[i, j] = alpha * sum_k op(A)[i, k] op(B)[k, j] + beta * C[i, j], in double.
template <class T>
void naive_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, double beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + i] : A[i * lda + k];
        const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
      }
      C[i * ldc + j] = static_cast<T>(alpha * s + (beta == 0 ? 0.0 : beta * double(C[i * ldc + j])));
    }
  }
}

template <class T>
void check_gemm(const Kernels<T>& k, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha,
                T beta, double tolerance) {
  // Leading dimensions larger than the stored column counts, to catch ld mix-ups.
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
  const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
  const int64_t lda = a_cols + 3, ldb = b_cols + 2, ldc = N + 5;
  auto A = random_vector<T>(a_rows * lda, 1);
  auto B = random_vector<T>(b_rows * ldb, 2);
  auto C = random_vector<T>(M * ldc, 3);
  if (beta == T(0)) std::fill(C.begin(), C.end(), std::numeric_limits<T>::quiet_NaN());
  auto expected = C;
  naive_gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, expected.data(), ldc);
  k.gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      INFO("ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K << " beta=" << beta
                 << " at (" << i << ", " << j << ")");
      if (j < N) {
        CHECK(std::abs(double(C[i * ldc + j]) - double(expected[i * ldc + j])) <= tolerance);
      } else if (beta == T(0)) {  // padding columns of C must be left alone
        CHECK(std::isnan(C[i * ldc + j]));
      } else {
        CHECK(C[i * ldc + j] == expected[i * ldc + j]);
      }
    }
  }
}

}  // namespace

TEST_CASE("gemm: all transpose combinations, alpha/beta, padded leading dimensions") {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      check_gemm<double>(kd(), ta, tb, 7, 5, 9, 1.0, 0.0, 1e-12);
      check_gemm<double>(kd(), ta, tb, 13, 11, 6, -0.5, 2.0, 1e-12);
      check_gemm<float>(kf(), ta, tb, 70, 65, 90, 1.5, 0.0, 1e-4);   // large enough for blocked GEMM
      check_gemm<float>(kf(), ta, tb, 33, 1, 40, 1.0, 0.5, 1e-4);    // matrix-vector shape
      check_gemm<float>(kf(), ta, tb, 1, 37, 40, 2.0, 1.0, 1e-4);    // vector-matrix shape
    }
  }
}

TEST_CASE("gemm: a single row whose leading dimension is below its length (BLAS would refuse)") {
  // A 1 x K row with lda = 1 and a K x 1 column with ldb = 1: valid views that cblas rejects, so
  // with OpenBLAS these products must take the Eigen path and still be computed.
  const int64_t K = 20;
  auto A = random_vector<float>(K, 7);
  auto B = random_vector<float>(K, 8);
  std::vector<float> C = {std::numeric_limits<float>::quiet_NaN()};
  std::vector<float> expected = C;
  naive_gemm(false, false, 1, 1, K, 1.0, A.data(), 1, B.data(), 1, 0.0, expected.data(), 1);
  kf().gemm(false, false, 1, 1, K, 1.0f, A.data(), 1, B.data(), 1, 0.0f, C.data(), 1);
  CHECK(std::abs(C[0] - expected[0]) <= 1e-4);
}

TEST_CASE("gemm: K == 0 scales C by beta, beta == 0 clears NaN") {
  std::vector<float> C = {1, 2, 3, 4};
  kf().gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 3.0f, C.data(), 2);
  CHECK(C == std::vector<float>{3, 6, 9, 12});
  C.assign(4, std::numeric_limits<float>::quiet_NaN());
  kf().gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, C.data(), 2);
  CHECK(C == std::vector<float>{0, 0, 0, 0});
}

TEST_CASE("gemm_strided_batched matches per-matrix reference") {
  struct Case {
    int64_t M, N, K, batch;
  };
  // Small matrices with a big batch (parallel over the batch) and large ones (serial batch loop).
  for (Case c : {Case{5, 7, 3, 200}, Case{80, 70, 90, 3}, Case{4, 4, 4, 1}}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const int64_t lda = (ta ? c.M : c.K) + 1, ldb = (tb ? c.K : c.N) + 2, ldc = c.N + 1;
        const int64_t sa = (ta ? c.K : c.M) * lda + 4, sb = (tb ? c.N : c.K) * ldb + 3,
                      sc = c.M * ldc + 2;
        auto A = random_vector<float>(sa * c.batch, 4);
        auto B = random_vector<float>(sb * c.batch, 5);
        auto C = random_vector<float>(sc * c.batch, 6);
        auto expected = C;
        for (int64_t i = 0; i < c.batch; ++i) {
          naive_gemm(ta, tb, c.M, c.N, c.K, 0.75, A.data() + i * sa, lda, B.data() + i * sb, ldb,
                     -1.0, expected.data() + i * sc, ldc);
        }
        kf().gemm_strided_batched(ta, tb, c.M, c.N, c.K, 0.75f, A.data(), lda, sa, B.data(), ldb,
                                  sb, -1.0f, C.data(), ldc, sc, c.batch);
        INFO("M=" << c.M << " N=" << c.N << " K=" << c.K << " batch=" << c.batch << " ta=" << ta
                  << " tb=" << tb);
        CHECK(max_abs_diff(C, expected) <= 1e-4);
      }
    }
  }
}

TEST_CASE("device_api: alloc is 64-byte aligned, copies and fill_i32") {
  const DeviceApi& api = cpu::device_api();
  for (size_t bytes : {size_t(0), size_t(1), size_t(100), size_t(1 << 20)}) {
    void* p = api.alloc(bytes);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    api.free(p);
  }
  std::vector<float> src = random_vector<float>(1000, 7), dst(1000), back(1000);
  float* dev = static_cast<float*>(api.alloc(1000 * sizeof(float)));
  api.copy_from_host(dev, src.data(), 1000 * sizeof(float));
  float* dev2 = static_cast<float*>(api.alloc(1000 * sizeof(float)));
  api.copy_on_device(dev2, dev, 1000 * sizeof(float));
  api.synchronize();
  api.copy_to_host(back.data(), dev2, 1000 * sizeof(float));
  CHECK(back == src);
  api.free(dev);
  api.free(dev2);

  std::vector<int32_t> ids(100000, 0);
  api.fill_i32(ids.data(), int64_t(ids.size()), -7);
  CHECK(std::count(ids.begin(), ids.end(), -7) == int64_t(ids.size()));
  CHECK_THROWS_AS(api.alloc(size_t(-1) - 10), std::runtime_error);
}

namespace {

// Reference gather: walk the multi-index of the view in row-major order.
template <class Word>
std::vector<Word> naive_gather(const std::vector<Word>& x, const StridedLayout& l) {
  int64_t n = 1;
  for (int d = 0; d < l.rank; ++d) n *= l.shape[d];
  std::vector<Word> y(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rest = i, offset = 0;
    for (int d = l.rank - 1; d >= 0; --d) {
      offset += (rest % l.shape[d]) * l.strides[d];
      rest /= l.shape[d];
    }
    y[i] = x[offset];
  }
  return y;
}

template <class Word>
void check_copy_strided(const StridedLayout& l, int64_t source_size, int64_t base_offset) {
  std::vector<Word> x(source_size);
  for (int64_t i = 0; i < source_size; ++i) x[i] = static_cast<Word>(i * 7 + 1);
  const std::vector<Word> shifted(x.begin() + base_offset, x.end());
  const auto expected = naive_gather(shifted, l);
  std::vector<Word> y(expected.size());
  cpu::device_api().copy_strided(x.data() + base_offset, sizeof(Word), l, y.data());
  CHECK(y == expected);
}

}  // namespace

TEST_CASE("device_api: copy_strided gathers transposes, slices and broadcasts") {
  // Transpose of a [3, 4, 5] tensor to [5, 3, 4].
  StridedLayout transpose{3, {5, 3, 4}, {1, 20, 5}};
  check_copy_strided<float>(transpose, 60, 0);
  check_copy_strided<int32_t>(transpose, 60, 0);
  check_copy_strided<double>(transpose, 60, 0);
  // A slice [1:3, :, 2:5] of [4, 6, 7] (offset applied by the caller), big enough to go parallel.
  StridedLayout slice{3, {2, 6, 3}, {42, 7, 1}};
  check_copy_strided<float>(slice, 4 * 6 * 7, 42 + 2);
  StridedLayout big{2, {300, 200}, {1, 300}};  // transpose of [200, 300]
  check_copy_strided<float>(big, 60000, 0);
  check_copy_strided<double>(big, 60000, 0);
  StridedLayout contiguous{2, {300, 200}, {200, 1}};  // collapses to one long row, split in segments
  check_copy_strided<float>(contiguous, 60000, 0);
  StridedLayout every_other{1, {40000}, {2}};
  check_copy_strided<double>(every_other, 80000, 0);
  StridedLayout broadcast{3, {2, 3, 4}, {0, 1, 0}};  // expand of a [3] vector
  check_copy_strided<float>(broadcast, 3, 0);
  StridedLayout scalar{0, {}, {}};
  check_copy_strided<double>(scalar, 1, 0);
  float dummy = 0;
  CHECK_THROWS_AS(cpu::device_api().copy_strided(&dummy, 2, scalar, &dummy), std::invalid_argument);
}
