// CUDA backend parity: every kernel of the CUDA table against the CPU table (the reference, itself
// tested against naive loops and finite differences) on random inputs with random and odd shapes,
// broadcasting included, forward and backward. Errors are judged relative to the magnitude of the
// reference: max |gpu - cpu| / max(1, scale) <= 1e-5, where scale is max |cpu| or, for long sums,
// the largest sum of absolute terms. Indices (argmax, top-k) and dropout masks must match exactly.
//
// Without a GPU (or without the CUDA backend in the build) the device tests pass with the message
// "skipped: ..."; the tests that need no device (the table, the error macros) still run.
#include <doctest/doctest.h>

#ifndef GLIMPSE_WITH_CUDA

TEST_CASE("cuda parity") { MESSAGE("skipped: no CUDA device (this build has no CUDA backend)"); }

#else

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "cuda/check.h"
#include "tensor/cpu/backend.h"

using namespace glimpse;

namespace {

const Kernels<float>& gpu() { return cuda::kernels_f32(); }
const Kernels<float>& ref() { return cpu::kernels_f32(); }
const DeviceApi& gpu_api() { return cuda::device_api(); }

#define SKIP_WITHOUT_GPU()                \
  do {                                    \
    if (!cuda::device_present()) {        \
      MESSAGE("skipped: no CUDA device"); \
      return;                             \
    }                                     \
  } while (0)

constexpr double kTolerance = 1e-5;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Device memory holding a copy of a host vector; freed when it goes out of scope.
template <class T>
class DeviceVector {
 public:
  explicit DeviceVector(const std::vector<T>& host)
      : size_(host.size()), data_(static_cast<T*>(gpu_api().alloc(host.size() * sizeof(T)))) {
    gpu_api().copy_from_host(data_, host.data(), size_ * sizeof(T));
  }
  ~DeviceVector() { gpu_api().free(data_); }
  DeviceVector(const DeviceVector&) = delete;
  DeviceVector& operator=(const DeviceVector&) = delete;

  T* get() const { return data_; }
  std::vector<T> to_host() const {
    std::vector<T> host(size_);
    gpu_api().copy_to_host(host.data(), data_, size_ * sizeof(T));
    return host;
  }

 private:
  size_t size_;
  T* data_;
};

// Outputs start as NaN (or a sentinel index) on the GPU, so an element a kernel forgets to write
// shows up as a mismatch.
std::vector<float> unwritten(int64_t n) { return std::vector<float>(n, kNaN); }
std::vector<int32_t> unwritten_i32(int64_t n) { return std::vector<int32_t>(n, -12345); }

class Random {
 public:
  explicit Random(uint32_t seed) : gen_(seed) {}
  std::vector<float> uniform(int64_t n, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(dist(gen_));
    return v;
  }
  // Values on a coarse grid, so that ties are common (argmax, top-k and pooling tie rules).
  std::vector<float> with_ties(int64_t n, int levels = 7) {
    std::uniform_int_distribution<int> dist(-levels, levels);
    std::vector<float> v(n);
    for (float& x : v) x = 0.25f * static_cast<float>(dist(gen_));
    return v;
  }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return std::uniform_int_distribution<int64_t>(lo, hi)(gen_);
  }
  std::vector<int32_t> indices(int64_t n, int32_t lo, int32_t hi) {
    std::uniform_int_distribution<int32_t> dist(lo, hi);
    std::vector<int32_t> v(n);
    for (int32_t& x : v) x = dist(gen_);
    return v;
  }

 private:
  std::mt19937 gen_;
};

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::abs(double(x)));
  return m;
}

// max |got - want| / max(1, scale, max |want|) <= tolerance; a NaN in one but not the other fails.
void check_close(const std::string& what, const std::vector<float>& got,
                 const std::vector<float>& want, double scale = 0.0,
                 double tolerance = kTolerance) {
  REQUIRE(got.size() == want.size());
  const double denominator = std::max({1.0, scale, max_abs(want)});
  double worst = 0;
  size_t worst_index = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool got_nan = std::isnan(got[i]), want_nan = std::isnan(want[i]);
    double d = 0;
    if (got_nan || want_nan) {
      d = got_nan == want_nan ? 0.0 : std::numeric_limits<double>::infinity();
    } else if (got[i] != want[i]) {  // also equal infinities
      d = std::abs(double(got[i]) - double(want[i])) / denominator;
    }
    if (d > worst) {
      worst = d;
      worst_index = i;
    }
  }
  INFO(what << ": worst relative error " << worst << " at element " << worst_index << " of "
            << got.size() << " (gpu " << (got.empty() ? 0.f : got[worst_index]) << ", cpu "
            << (want.empty() ? 0.f : want[worst_index]) << ", scale " << denominator << ")");
  CHECK(worst <= tolerance);
}

// Bit-for-bit equality (NaN equal to NaN).
void check_identical(const std::string& what, const std::vector<float>& got,
                     const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  int64_t mismatches = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 &&
        !(std::isnan(got[i]) && std::isnan(want[i]))) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++mismatches;
    }
  }
  INFO(what << ": " << mismatches << " of " << got.size() << " differ, first at " << first);
  CHECK(mismatches == 0);
}

template <class Int>
void check_equal(const std::string& what, const std::vector<Int>& got,
                 const std::vector<Int>& want) {
  REQUIRE(got.size() == want.size());
  int64_t mismatches = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++mismatches;
    }
  }
  INFO(what << ": " << mismatches << " of " << got.size() << " differ, first at " << first
            << (first >= 0 ? " (gpu " + std::to_string(got[first]) + ", cpu " +
                                 std::to_string(want[first]) + ")"
                           : std::string()));
  CHECK(mismatches == 0);
}

// Largest per-column sum of |values| of a [rows, cols] matrix: the scale of a column sum's error.
double max_column_abs_sum(const std::vector<float>& m, int64_t rows, int64_t cols) {
  double worst = 0;
  for (int64_t c = 0; c < cols; ++c) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += std::abs(double(m[r * cols + c]));
    worst = std::max(worst, s);
  }
  return worst;
}

std::vector<float> abs_values(std::vector<float> v) {
  for (float& x : v) x = std::abs(x);
  return v;
}

// TF padding rules: SAME: out = ceil(in / s), total pad = max(0, (out - 1) * s + k - in), before =
// total / 2. VALID: out = (in - k) / s + 1.
Conv2dGeometry make_geometry(int64_t N, int64_t H, int64_t W, int64_t C, int64_t KH, int64_t KW,
                             int64_t SH, int64_t SW, bool same) {
  Conv2dGeometry g{N, H, W, C, KH, KW, SH, SW, 0, 0, 0, 0};
  if (same) {
    g.OH = (H + SH - 1) / SH;
    g.OW = (W + SW - 1) / SW;
    g.pad_top = std::max<int64_t>(0, (g.OH - 1) * SH + KH - H) / 2;
    g.pad_left = std::max<int64_t>(0, (g.OW - 1) * SW + KW - W) / 2;
  } else {
    g.OH = (H - KH) / SH + 1;
    g.OW = (W - KW) / SW + 1;
  }
  return g;
}

std::string describe(const Conv2dGeometry& g) {
  std::ostringstream s;
  s << "N" << g.N << " H" << g.H << " W" << g.W << " C" << g.C << " k" << g.KH << "x" << g.KW
    << " s" << g.SH << "x" << g.SW << " pad " << g.pad_top << "," << g.pad_left << " out " << g.OH
    << "x" << g.OW;
  return s.str();
}

// Random geometries (SAME and VALID, odd sizes, strides above and below the window) plus a few
// fixed ones from Inception-ResNet-v2.
std::vector<Conv2dGeometry> conv_geometries(uint32_t seed) {
  std::vector<Conv2dGeometry> out = {
      make_geometry(2, 35, 35, 32, 3, 3, 1, 1, true),
      make_geometry(1, 17, 17, 24, 1, 7, 1, 1, true),
      make_geometry(1, 17, 17, 24, 7, 1, 1, 1, true),
      make_geometry(2, 35, 35, 16, 3, 3, 2, 2, false),
      make_geometry(1, 10, 10, 3, 4, 4, 3, 3, true),
      make_geometry(1, 5, 4, 2, 5, 5, 1, 1, true),
  };
  Random rnd(seed);
  while (out.size() < 30) {
    const int64_t KH = rnd.integer(1, 4), KW = rnd.integer(1, 4);
    const bool same = rnd.integer(0, 1) == 1;
    const int64_t H = rnd.integer(same ? 1 : KH, 13), W = rnd.integer(same ? 1 : KW, 13);
    out.push_back(make_geometry(rnd.integer(1, 3), H, W, rnd.integer(1, 9), KH, KW,
                                rnd.integer(1, 3), rnd.integer(1, 3), same));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Tests that need no device.

TEST_CASE("cuda table: every kernel and DeviceApi entry is filled") {
  const Kernels<float>& k = cuda::kernels_f32();
  const void* const entries[] = {(void*)k.fill,
                                 (void*)k.cast_from_i32,
                                 (void*)k.cast_to_i32,
                                 (void*)k.axpy,
                                 (void*)k.copy_2d,
                                 (void*)k.unary,
                                 (void*)k.unary_backward,
                                 (void*)k.binary,
                                 (void*)k.binary_backward,
                                 (void*)k.where,
                                 (void*)k.reduce_sum,
                                 (void*)k.reduce_prod,
                                 (void*)k.reduce_prod_backward,
                                 (void*)k.reduce_max,
                                 (void*)k.reduce_max_backward,
                                 (void*)k.gemm,
                                 (void*)k.gemm_strided_batched,
                                 (void*)k.softmax,
                                 (void*)k.softmax_backward,
                                 (void*)k.cross_entropy,
                                 (void*)k.cross_entropy_backward,
                                 (void*)k.layer_norm,
                                 (void*)k.layer_norm_backward,
                                 (void*)k.batch_norm_stats,
                                 (void*)k.batch_norm_forward,
                                 (void*)k.batch_norm_backward,
                                 (void*)k.gather_rows,
                                 (void*)k.scatter_add_rows,
                                 (void*)k.im2col,
                                 (void*)k.col2im,
                                 (void*)k.max_pool,
                                 (void*)k.max_pool_backward,
                                 (void*)k.avg_pool,
                                 (void*)k.avg_pool_backward,
                                 (void*)k.dropout_mask,
                                 (void*)k.gru_step,
                                 (void*)k.gru_step_backward,
                                 (void*)k.gru_gates_reset_before,
                                 (void*)k.gru_output_reset_before,
                                 (void*)k.gru_output_reset_before_backward,
                                 (void*)k.gru_gates_reset_before_backward,
                                 (void*)k.argmax_rows,
                                 (void*)k.topk_rows,
                                 (void*)k.adam_update,
                                 (void*)k.adam_update_multi,
                                 (void*)k.sgd_update};
  static_assert(sizeof(entries) == sizeof(Kernels<float>), "a new kernel is missing here");
  for (const void* entry : entries) CHECK(entry != nullptr);

  const DeviceApi& api = cuda::device_api();
  const void* const api_entries[] = {(void*)api.alloc,          (void*)api.free,
                                     (void*)api.copy_to_host,   (void*)api.copy_from_host,
                                     (void*)api.copy_on_device, (void*)api.synchronize,
                                     (void*)api.copy_strided,   (void*)api.fill_i32};
  static_assert(sizeof(api_entries) == sizeof(DeviceApi), "a new DeviceApi entry is missing here");
  for (const void* entry : api_entries) CHECK(entry != nullptr);
}

TEST_CASE("cuda check macros name the call, the file:line and CUDA's error") {
  try {
    GLIMPSE_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL("GLIMPSE_CUDA_CHECK did not throw");
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find("test_cuda_parity.cpp:") != std::string::npos);
    CHECK(message.find("cudaErrorInvalidValue") != std::string::npos);
  }
  try {
    GLIMPSE_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE);
    FAIL("GLIMPSE_CUBLAS_CHECK did not throw");
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find("test_cuda_parity.cpp:") != std::string::npos);
    CHECK(message.find("CUBLAS_STATUS_INVALID_VALUE") != std::string::npos);
  }
  CHECK_FALSE(cuda::tf32_enabled());  // off unless asked for
}

// ---------------------------------------------------------------------------------------------
// Memory.

TEST_CASE("cuda allocator: reuse, statistics, out-of-memory") {
  SKIP_WITHOUT_GPU();
  cuda::release_cached_memory();
  const cuda::MemoryStats before = cuda::memory_stats();
  void* a = gpu_api().alloc(1000);
  CHECK(cuda::memory_stats().bytes_in_use >= before.bytes_in_use + 1000);
  gpu_api().free(a);
  void* b = gpu_api().alloc(900);
  if (cuda::caching_enabled()) {  // the same 1024-byte bucket: served from the cache
    CHECK(b == a);
    CHECK(cuda::memory_stats().cache_hits == before.cache_hits + 1);
  } else {
    MESSAGE("GLIMPSE_CUDA_NO_CACHE is set: cache reuse not tested");
  }
  CHECK(cuda::memory_stats().peak_bytes_in_use >= before.bytes_in_use + 1000);
  gpu_api().free(b);
  void* empty = gpu_api().alloc(0);  // a real, freeable pointer
  CHECK(empty != nullptr);
  gpu_api().free(empty);
  gpu_api().free(nullptr);
  cuda::release_cached_memory();
  CHECK(cuda::memory_stats().bytes_cached == 0);
  CHECK(cuda::memory_stats().bytes_in_use == before.bytes_in_use);

  // A petabyte cannot be had: the cache is released, the retry fails, and a clear error says so.
  try {
    gpu_api().alloc(size_t(1) << 50);
    FAIL("allocating 1 PiB did not throw");
  } catch (const std::runtime_error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("out of device memory") != std::string::npos);
  }
  // ... and leaves the backend usable.
  DeviceVector<float> x(std::vector<float>(10, 1.0f));
  gpu().fill(x.get(), 10, 3.0f);
  CHECK(x.to_host() == std::vector<float>(10, 3.0f));
}

TEST_CASE("cuda parity: copies, fill, casts, axpy, copy_2d, copy_strided") {
  SKIP_WITHOUT_GPU();
  Random rnd(1);
  for (int64_t n : {1, 7, 1000, 70001}) {
    INFO("n = " << n);
    DeviceVector<float> y(unwritten(n));
    gpu().fill(y.get(), n, -2.5f);
    CHECK(y.to_host() == std::vector<float>(n, -2.5f));

    DeviceVector<int32_t> yi(unwritten_i32(n));
    gpu_api().fill_i32(yi.get(), n, 77);
    CHECK(yi.to_host() == std::vector<int32_t>(n, 77));

    const auto ints = rnd.indices(n, -100000, 100000);
    std::vector<float> from_i32(n);
    ref().cast_from_i32(ints.data(), from_i32.data(), n);
    DeviceVector<int32_t> di(ints);
    DeviceVector<float> df(unwritten(n));
    gpu().cast_from_i32(di.get(), df.get(), n);
    check_identical("cast_from_i32", df.to_host(), from_i32);

    auto floats = rnd.uniform(n, -1000, 1000);
    floats[0] = kNaN;  // NaN -> 0, out of range saturates
    if (n > 2) floats[1] = 1e10f, floats[2] = -1e10f;
    std::vector<int32_t> to_i32(n);
    ref().cast_to_i32(floats.data(), to_i32.data(), n);
    DeviceVector<float> dfl(floats);
    DeviceVector<int32_t> dto(unwritten_i32(n));
    gpu().cast_to_i32(dfl.get(), dto.get(), n);
    check_equal("cast_to_i32", dto.to_host(), to_i32);

    const auto x = rnd.uniform(n);
    auto yy = rnd.uniform(n);
    DeviceVector<float> dx(x), dyy(yy);
    ref().axpy(n, 0.75f, x.data(), yy.data());
    gpu().axpy(n, 0.75f, dx.get(), dyy.get());
    check_close("axpy", dyy.to_host(), yy);

    // Device-to-device copy through the DeviceApi.
    DeviceVector<float> copy(unwritten(n));
    gpu_api().copy_on_device(copy.get(), dx.get(), n * sizeof(float));
    check_identical("copy_on_device", copy.to_host(), x);
  }

  for (int trial = 0; trial < 12; ++trial) {
    const int64_t rows = rnd.integer(1, 300), cols = rnd.integer(1, 200);
    const int64_t src_ld = cols + rnd.integer(0, 5), dst_ld = cols + rnd.integer(0, 5);
    INFO("copy_2d rows " << rows << " cols " << cols << " ld " << src_ld << "/" << dst_ld);
    const auto src = rnd.uniform(rows * src_ld);
    auto dst = rnd.uniform(rows * dst_ld);  // the gaps between rows must survive
    DeviceVector<float> dsrc(src), ddst(dst);
    ref().copy_2d(src.data(), src_ld, dst.data(), dst_ld, rows, cols);
    gpu().copy_2d(dsrc.get(), src_ld, ddst.get(), dst_ld, rows, cols);
    check_identical("copy_2d", ddst.to_host(), dst);
  }

  // Strided gathers of random views (transposes, slices with steps, broadcast axes) of 4- and
  // 8-byte elements.
  for (int trial = 0; trial < 20; ++trial) {
    StridedLayout layout;
    layout.rank = static_cast<int>(rnd.integer(0, 5));
    int64_t count = 1;
    for (int d = 0; d < layout.rank; ++d) {
      layout.shape[d] = rnd.integer(1, 9);
      count *= layout.shape[d];
    }
    // Strides: the axes laid out in a random order, each stretched by a random step (a sliced
    // view), with the odd broadcast axis (stride 0).
    std::vector<int> order(layout.rank);
    for (int d = 0; d < layout.rank; ++d) order[d] = d;
    std::shuffle(order.begin(), order.end(), std::mt19937(trial));
    int64_t span = 1;
    for (int d : order) {
      const bool broadcast = rnd.integer(0, 6) == 0;
      const int64_t step = rnd.integer(1, 2);
      layout.strides[d] = broadcast ? 0 : span * step;
      if (!broadcast) span *= step * layout.shape[d];
    }
    int64_t extent = 1;  // elements the view reaches
    for (int d = 0; d < layout.rank; ++d) extent += (layout.shape[d] - 1) * layout.strides[d];
    const int64_t offset = rnd.integer(0, 3);
    INFO("copy_strided rank " << layout.rank << " count " << count);
    {
      const auto base = rnd.uniform(extent + offset + 1);
      std::vector<float> want(count);
      ref().fill(want.data(), count, 0.0f);
      cpu::device_api().copy_strided(base.data() + offset, 4, layout, want.data());
      DeviceVector<float> dbase(base), dout(unwritten(count));
      gpu_api().copy_strided(dbase.get() + offset, 4, layout, dout.get());
      check_identical("copy_strided (4 bytes)", dout.to_host(), want);
    }
    {
      std::vector<int64_t> base(extent + offset + 1);
      for (auto& v : base) v = rnd.integer(-1000000000000, 1000000000000);
      std::vector<int64_t> want(count);
      cpu::device_api().copy_strided(base.data() + offset, 8, layout, want.data());
      DeviceVector<int64_t> dbase(base), dout(std::vector<int64_t>(count, -1));
      gpu_api().copy_strided(dbase.get() + offset, 8, layout, dout.get());
      check_equal("copy_strided (8 bytes)", dout.to_host(), want);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Element-wise.

TEST_CASE("cuda parity: unary maps and their derivatives") {
  SKIP_WITHOUT_GPU();
  struct UnaryCase {
    UnaryOp op;
    std::string name;
    double lo, hi;
    float param;
  };
  // Every op of the list on its test range (tensor/elementwise_ops.h), plus pow's special exponents.
  std::vector<UnaryCase> cases;
  for (UnaryOp op : kAllUnaryOps) {
    visit_unary(op, [&](auto f) {
      using Op = decltype(f);
      cases.push_back({op, Op::name, Op::test_lo, Op::test_hi, float(Op::test_param)});
    });
  }
  cases.push_back({UnaryOp::PowScalar, "pow 2", -3, 3, 2.0f});
  cases.push_back({UnaryOp::PowScalar, "pow -0.5", 0.05, 4, -0.5f});
  cases.push_back({UnaryOp::PowScalar, "pow 3", -2, 2, 3.0f});
  Random rnd(2);
  for (const UnaryCase& c : cases) {
    for (int64_t n : {1, 33, 5000, 100003}) {
      INFO(c.name << " n = " << n);
      const auto x = rnd.uniform(n, c.lo, c.hi);
      const auto gy = rnd.uniform(n);
      std::vector<float> y(n), gx(n);
      ref().unary(c.op, x.data(), y.data(), n, c.param);
      ref().unary_backward(c.op, x.data(), y.data(), gy.data(), gx.data(), n, c.param);
      DeviceVector<float> dx(x), dy(unwritten(n)), dgy(gy), dgx(unwritten(n));
      gpu().unary(c.op, dx.get(), dy.get(), n, c.param);
      check_close(c.name + " forward", dy.to_host(), y);
      DeviceVector<float> dy_ref(y);  // the backward from the same y on both sides
      gpu().unary_backward(c.op, dx.get(), dy_ref.get(), dgy.get(), dgx.get(), n, c.param);
      check_close(c.name + " backward", dgx.to_host(), gx);
    }
  }
}

TEST_CASE("cuda parity: broadcasting binary ops and where") {
  SKIP_WITHOUT_GPU();
  Random rnd(3);
  for (int trial = 0; trial < 40; ++trial) {
    BroadcastLayout layout;
    layout.rank = static_cast<int>(rnd.integer(0, 5));
    int64_t total = 1;
    for (int d = 0; d < layout.rank; ++d) {
      layout.shape[d] = rnd.integer(1, trial % 4 == 0 ? 40 : 7);
      total *= layout.shape[d];
    }
    // Each operand: contiguous over its own shape, where each axis is either the output's or a
    // broadcast 1 (stride 0). Every fifth trial transposes operand a's last two axes instead.
    int64_t sizes[2] = {1, 1};
    int64_t* strides[2] = {layout.a_strides, layout.b_strides};
    for (int operand = 0; operand < 2; ++operand) {
      int64_t step = 1;
      for (int d = layout.rank - 1; d >= 0; --d) {
        const bool broadcast = rnd.integer(0, 2) == 0;
        strides[operand][d] = broadcast ? 0 : step;
        if (!broadcast) step *= layout.shape[d];
      }
      sizes[operand] = step;
    }
    if (trial % 5 == 4 && layout.rank >= 2) {
      const int d0 = layout.rank - 2, d1 = layout.rank - 1;
      int64_t step = 1;
      for (int d = 0; d < layout.rank; ++d) layout.a_strides[d] = 0;
      layout.a_strides[d0] = step;  // a stored as [.., shape[d1], shape[d0]]
      step *= layout.shape[d0];
      layout.a_strides[d1] = step;
      step *= layout.shape[d1];
      for (int d = d0 - 1; d >= 0; --d) {
        layout.a_strides[d] = step;
        step *= layout.shape[d];
      }
      sizes[0] = step;
    }
    std::string shape = "[";
    for (int d = 0; d < layout.rank; ++d) {
      shape += std::to_string(layout.shape[d]) + "/" + std::to_string(layout.a_strides[d]) + "/" +
               std::to_string(layout.b_strides[d]) + " ";
    }
    INFO("shape/a_stride/b_stride " << shape << "]");
    const auto a = rnd.uniform(sizes[0], -3, 3);
    auto b = rnd.uniform(sizes[1], 0.5, 2);
    for (size_t i = 0; i < b.size(); i += 2) b[i] = -b[i];  // away from 0 for div
    DeviceVector<float> da(a), db(b);
    for (BinaryOp op : kAllBinaryOps) {
      std::vector<float> y(total);
      ref().binary(op, a.data(), b.data(), y.data(), layout);
      DeviceVector<float> dy(unwritten(total));
      gpu().binary(op, da.get(), db.get(), dy.get(), layout);
      check_close(op_name(op), dy.to_host(), y);
    }
  }

  for (int64_t n : {1, 100, 65537}) {
    auto cond = rnd.uniform(n);
    for (size_t i = 0; i < cond.size(); i += 3) cond[i] = 0.0f;
    if (n > 1) cond[1] = -0.0f;  // negative zero is zero
    const auto a = rnd.uniform(n), b = rnd.uniform(n);
    std::vector<float> y(n);
    ref().where(cond.data(), a.data(), b.data(), y.data(), n);
    DeviceVector<float> dc(cond), da(a), db(b), dy(unwritten(n));
    gpu().where(dc.get(), da.get(), db.get(), dy.get(), n);
    check_identical("where", dy.to_host(), y);
  }
}

TEST_CASE("cuda parity: binary_backward with broadcasting (pow: zero and negative bases)") {
  SKIP_WITHOUT_GPU();
  Random rnd(13);
  for (int trial = 0; trial < 30; ++trial) {
    BroadcastLayout layout;
    layout.rank = static_cast<int>(rnd.integer(0, 4));
    int64_t total = 1;
    for (int d = 0; d < layout.rank; ++d) {
      layout.shape[d] = rnd.integer(1, trial % 3 == 0 ? 60 : 7);
      total *= layout.shape[d];
    }
    int64_t sizes[2] = {1, 1};
    int64_t* strides[2] = {layout.a_strides, layout.b_strides};
    for (int operand = 0; operand < 2; ++operand) {
      int64_t step = 1;
      for (int d = layout.rank - 1; d >= 0; --d) {
        const bool broadcast = rnd.integer(0, 2) == 0;
        strides[operand][d] = broadcast ? 0 : step;
        if (!broadcast) step *= layout.shape[d];
      }
      sizes[operand] = step;
    }
    INFO("trial " << trial << " rank " << layout.rank << " size " << total);
    // Mostly positive bases, some exact zeros and negatives; exponents with some integers and 0.
    auto a = rnd.uniform(sizes[0], 0.2, 2.5);
    for (size_t i = 0; i < a.size(); i += 7) a[i] = 0.0f;
    for (size_t i = 3; i < a.size(); i += 11) a[i] = -a[i];
    auto b = rnd.uniform(sizes[1], -2, 2);
    for (size_t i = 0; i < b.size(); i += 5) b[i] = static_cast<float>(rnd.integer(-2, 3));
    const auto gy = rnd.uniform(total);
    for (BinaryOp op : kAllBinaryOps) {
      // Divisors away from 0 for div; pow gets the zeros and negatives above.
      std::vector<float> bo = b;
      if (op == BinaryOp::Div)
        for (float& v : bo) v = v < 0 ? v - 0.5f : v + 0.5f;
      const std::string name = op_name(op);
      std::vector<float> y(total), ga(total), gb(total);
      ref().binary(op, a.data(), bo.data(), y.data(), layout);
      ref().binary_backward(op, a.data(), bo.data(), y.data(), gy.data(), ga.data(), gb.data(),
                            layout);
      DeviceVector<float> da(a), db(bo), dy(y), dgy(gy), dga(unwritten(total)),
          dgb(unwritten(total));
      gpu().binary_backward(op, da.get(), db.get(), dy.get(), dgy.get(), dga.get(), dgb.get(),
                            layout);
      check_close(name + " backward, left", dga.to_host(), ga);
      check_close(name + " backward, right", dgb.to_host(), gb);
      DeviceVector<float> dgb_only(unwritten(total));
      gpu().binary_backward(op, da.get(), db.get(), dy.get(), dgy.get(), nullptr, dgb_only.get(),
                            layout);
      check_close(name + " backward, right alone", dgb_only.to_host(), gb);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reductions.

TEST_CASE("cuda parity: reduce_prod and its backward over [outer, R, inner], zeros included") {
  SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t outer, R, inner;
  };
  // Warp and block groups (R above 1024), thread-per-output (inner > 1, many outputs), R = 0.
  std::vector<Shape> shapes = {{1, 1, 1},   {3, 5, 7},     {1, 5000, 1}, {1, 3000, 33},
                               {2, 40, 3000}, {300, 257, 1}, {7, 1, 9},    {64, 100, 5},
                               {5, 3000, 1}, {2, 1025, 1},  {4, 0, 3}};
  Random rnd(14);
  for (int i = 0; i < 8; ++i) {
    shapes.push_back({rnd.integer(1, 50), rnd.integer(1, 300), rnd.integer(1, 80)});
  }
  for (const Shape& s : shapes) {
    INFO("outer " << s.outer << " R " << s.R << " inner " << s.inner);
    const int64_t n = s.outer * s.R * s.inner, outputs = s.outer * s.inner;
    // Near 1, so long products stay in range; random signs; zeros scattered so that columns hold
    // none, one or several.
    auto x = rnd.uniform(n, 0.98, 1.02);
    for (size_t i = 0; i < x.size(); i += 5) x[i] = -x[i];
    for (size_t i = 0; i < x.size(); i += 97) x[i] = 0.0f;
    std::vector<float> y(outputs);
    ref().reduce_prod(x.data(), y.data(), s.outer, s.R, s.inner);
    DeviceVector<float> dx(x), dy(unwritten(outputs));
    gpu().reduce_prod(dx.get(), dy.get(), s.outer, s.R, s.inner);
    // Each product's rounding error grows with R (about sqrt(R) float epsilons).
    const double tolerance = kTolerance * std::max(1.0, std::sqrt(double(s.R)) / 10);
    check_close("reduce_prod", dy.to_host(), y, 0.0, tolerance);

    const auto gy = rnd.uniform(outputs);
    std::vector<float> gx(n);
    ref().reduce_prod_backward(x.data(), gy.data(), gx.data(), s.outer, s.R, s.inner);
    DeviceVector<float> dgy(gy), dgx(unwritten(n));
    gpu().reduce_prod_backward(dx.get(), dgy.get(), dgx.get(), s.outer, s.R, s.inner);
    check_close("reduce_prod_backward", dgx.to_host(), gx, 0.0, tolerance);
  }
}

TEST_CASE("cuda parity: reduce_sum, reduce_max and its backward over [outer, R, inner]") {
  SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t outer, R, inner;
  };
  // Contiguous rows short and long (warp and block groups), few and many side-by-side outputs,
  // long narrow columns (bias gradients), single elements.
  std::vector<Shape> shapes = {{1, 1, 1},     {3, 5, 7},     {1, 70000, 1}, {1, 5000, 33},
                               {2, 40, 3000}, {300, 257, 1}, {7, 1, 9},     {64, 100, 5},
                               {1, 20000, 3}, {5, 3000, 1},  {2, 1025, 1},  {1, 2560, 512},
                               {9, 2, 1000},  {1000, 31, 1}};
  Random rnd(4);
  for (int i = 0; i < 10; ++i) {
    shapes.push_back({rnd.integer(1, 50), rnd.integer(1, 300), rnd.integer(1, 80)});
  }
  for (const Shape& s : shapes) {
    INFO("outer " << s.outer << " R " << s.R << " inner " << s.inner);
    const int64_t n = s.outer * s.R * s.inner, outputs = s.outer * s.inner;
    const auto x = rnd.uniform(n);
    DeviceVector<float> dx(x);

    std::vector<float> sum(outputs), abs_sum(outputs);
    ref().reduce_sum(x.data(), sum.data(), s.outer, s.R, s.inner);
    const auto x_abs = abs_values(x);
    ref().reduce_sum(x_abs.data(), abs_sum.data(), s.outer, s.R, s.inner);
    DeviceVector<float> dsum(unwritten(outputs));
    gpu().reduce_sum(dx.get(), dsum.get(), s.outer, s.R, s.inner);
    check_close("reduce_sum", dsum.to_host(), sum, max_abs(abs_sum));

    // Max on values with many ties: the first index must win on both.
    const auto xt = rnd.with_ties(n);
    std::vector<float> max(outputs);
    std::vector<int32_t> argmax(outputs);
    ref().reduce_max(xt.data(), max.data(), argmax.data(), s.outer, s.R, s.inner);
    DeviceVector<float> dxt(xt), dmax(unwritten(outputs));
    DeviceVector<int32_t> dargmax(unwritten_i32(outputs));
    gpu().reduce_max(dxt.get(), dmax.get(), dargmax.get(), s.outer, s.R, s.inner);
    check_identical("reduce_max", dmax.to_host(), max);
    check_equal("reduce_max argmax", dargmax.to_host(), argmax);

    const auto gy = rnd.uniform(outputs);
    std::vector<float> gx(n);
    ref().reduce_max_backward(gy.data(), argmax.data(), gx.data(), s.outer, s.R, s.inner);
    DeviceVector<float> dgy(gy), dgx(unwritten(n));
    DeviceVector<int32_t> dargmax_ref(argmax);
    gpu().reduce_max_backward(dgy.get(), dargmax_ref.get(), dgx.get(), s.outer, s.R, s.inner);
    check_identical("reduce_max_backward", dgx.to_host(), gx);
  }
}

TEST_CASE("cuda parity: argmax_rows and topk_rows, ties and NaN") {
  SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{1, 1},    {5, 7},    {64, 33},  {3, 1024}, {4, 1025},
                          {2, 5000}, {300, 10}, {17, 129}, {1, 10000}};
  Random rnd(5);
  for (const Shape& s : shapes) {
    for (bool with_nan : {false, true}) {
      INFO("rows " << s.rows << " cols " << s.cols << (with_nan ? " with NaN" : ""));
      auto x = rnd.with_ties(s.rows * s.cols, s.cols > 100 ? 50 : 5);
      if (with_nan) {
        for (int64_t r = 0; r < s.rows; r += 2) x[r * s.cols + rnd.integer(0, s.cols - 1)] = kNaN;
      }
      DeviceVector<float> dx(x);
      std::vector<int32_t> idx(s.rows);
      ref().argmax_rows(x.data(), idx.data(), s.rows, s.cols);
      DeviceVector<int32_t> didx(unwritten_i32(s.rows));
      gpu().argmax_rows(dx.get(), didx.get(), s.rows, s.cols);
      check_equal("argmax_rows", didx.to_host(), idx);

      for (int64_t k : {int64_t(1), int64_t(5), std::min<int64_t>(64, s.cols), s.cols}) {
        if (k > s.cols || (k == s.cols && s.cols > 200)) continue;
        INFO("k = " << k);
        std::vector<float> values(s.rows * k);
        std::vector<int32_t> indices(s.rows * k);
        ref().topk_rows(x.data(), values.data(), indices.data(), s.rows, s.cols, k);
        DeviceVector<float> dvalues(unwritten(s.rows * k));
        DeviceVector<int32_t> dindices(unwritten_i32(s.rows * k));
        gpu().topk_rows(dx.get(), dvalues.get(), dindices.get(), s.rows, s.cols, k);
        check_identical("topk values", dvalues.to_host(), values);
        check_equal("topk indices", dindices.to_host(), indices);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// GEMM.

TEST_CASE("cuda parity: gemm and gemm_strided_batched (row-major, all transposes, TF32 off)") {
  SKIP_WITHOUT_GPU();
  REQUIRE_FALSE(cuda::tf32_enabled());
  struct Dims {
    int64_t M, N, K;
  };
  // K up to 700: TF32 (10-bit mantissa) would typically miss 1e-5, so this also checks it is off.
  const Dims dims[] = {{1, 1, 1},    {7, 13, 5},    {65, 33, 129}, {128, 256, 300},
                       {3, 1000, 2}, {300, 7, 700}, {1, 512, 512}, {50, 1, 60}};
  struct Scalars {
    float alpha, beta;
  };
  const Scalars scalars[] = {{1.0f, 0.0f}, {0.5f, 2.0f}, {-1.3f, 1.0f}};
  Random rnd(6);
  int case_number = 0;
  for (const Dims& d : dims) {
    for (int trans = 0; trans < 4; ++trans) {
      const Scalars sc = scalars[case_number++ % 3];
      const bool ta = trans & 1, tb = trans & 2;
      // Stored shapes and leading dimensions, some with padding between rows.
      const int64_t a_rows = ta ? d.K : d.M, a_cols = ta ? d.M : d.K;
      const int64_t b_rows = tb ? d.N : d.K, b_cols = tb ? d.K : d.N;
      const int64_t lda = a_cols + rnd.integer(0, 3), ldb = b_cols + rnd.integer(0, 3);
      const int64_t ldc = d.N + rnd.integer(0, 3);
      INFO("M " << d.M << " N " << d.N << " K " << d.K << " trans_a " << ta << " trans_b " << tb
                << " alpha " << sc.alpha << " beta " << sc.beta);
      const auto A = rnd.uniform(a_rows * lda), B = rnd.uniform(b_rows * ldb);
      // beta == 0 must not read C: NaN there must not leak into the result.
      auto C = sc.beta == 0.0f ? unwritten(d.M * ldc) : rnd.uniform(d.M * ldc);
      std::vector<float> want = C, scale(d.M * ldc, 0.0f);
      ref().gemm(ta, tb, d.M, d.N, d.K, sc.alpha, A.data(), lda, B.data(), ldb, sc.beta,
                 want.data(), ldc);
      const auto A_abs = abs_values(A), B_abs = abs_values(B);
      ref().gemm(ta, tb, d.M, d.N, d.K, 1.0f, A_abs.data(), lda, B_abs.data(), ldb, 0.0f,
                 scale.data(), ldc);
      DeviceVector<float> dA(A), dB(B), dC(C);
      gpu().gemm(ta, tb, d.M, d.N, d.K, sc.alpha, dA.get(), lda, dB.get(), ldb, sc.beta, dC.get(),
                 ldc);
      // (Padding columns of C stay NaN on both sides when beta == 0; NaN matches NaN.)
      check_close("gemm", dC.to_host(), want, max_abs(scale) * (std::abs(sc.alpha) + 1));
    }
  }

  // K == 0: C = beta * C (beta == 0 writes zeros over whatever C held).
  for (float beta : {0.0f, 0.5f}) {
    const auto C = beta == 0.0f ? unwritten(6 * 4) : rnd.uniform(6 * 4);
    std::vector<float> want = C;
    ref().gemm(false, false, 6, 4, 0, 1.0f, nullptr, 1, nullptr, 4, beta, want.data(), 4);
    DeviceVector<float> dC(C), dummy(std::vector<float>(1, 0.0f));
    gpu().gemm(false, false, 6, 4, 0, 1.0f, dummy.get(), 1, dummy.get(), 4, beta, dC.get(), 4);
    check_identical("gemm K = 0", dC.to_host(), want);
  }

  // Batched: random strides with gaps between matrices, and a shared (stride 0) operand.
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t M = rnd.integer(1, 40), N = rnd.integer(1, 40), K = rnd.integer(1, 90);
    const int64_t batch = rnd.integer(1, 7);
    const bool ta = rnd.integer(0, 1), tb = rnd.integer(0, 1);
    const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
    const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
    const int64_t lda = a_cols + rnd.integer(0, 2), ldb = b_cols + rnd.integer(0, 2), ldc = N;
    const int64_t stride_a = trial % 4 == 3 ? 0 : a_rows * lda + rnd.integer(0, 5);
    const int64_t stride_b = b_rows * ldb + rnd.integer(0, 5);
    const int64_t stride_c = M * ldc + rnd.integer(0, 5);
    const float alpha = 0.8f, beta = trial % 2 ? 0.0f : -0.5f;
    INFO("batched M " << M << " N " << N << " K " << K << " batch " << batch << " trans " << ta
                      << tb << " strides " << stride_a << "/" << stride_b << "/" << stride_c);
    const auto A = rnd.uniform(stride_a * (batch - 1) + a_rows * lda);
    const auto B = rnd.uniform(stride_b * (batch - 1) + b_rows * ldb);
    const auto C = rnd.uniform(stride_c * (batch - 1) + M * ldc);
    std::vector<float> want = C;
    ref().gemm_strided_batched(ta, tb, M, N, K, alpha, A.data(), lda, stride_a, B.data(), ldb,
                               stride_b, beta, want.data(), ldc, stride_c, batch);
    DeviceVector<float> dA(A), dB(B), dC(C);
    gpu().gemm_strided_batched(ta, tb, M, N, K, alpha, dA.get(), lda, stride_a, dB.get(), ldb,
                               stride_b, beta, dC.get(), ldc, stride_c, batch);
    check_close("gemm_strided_batched", dC.to_host(), want, double(K));
  }
}

TEST_CASE("cuda gemm with TF32 on: close to float32, and off again afterwards") {
  SKIP_WITHOUT_GPU();
  Random rnd(7);
  const int64_t M = 96, N = 80, K = 512;
  const auto A = rnd.uniform(M * K), B = rnd.uniform(K * N);
  std::vector<float> want(M * N);
  ref().gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, want.data(), N);
  DeviceVector<float> dA(A), dB(B), dC(unwritten(M * N));
  cuda::set_tf32(true);
  CHECK(cuda::tf32_enabled());
  gpu().gemm(false, false, M, N, K, 1.0f, dA.get(), K, dB.get(), N, 0.0f, dC.get(), N);
  const auto got = dC.to_host();
  cuda::set_tf32(false);
  // TF32 rounds inputs to 10 mantissa bits: relative error ~1e-3 of sum |a||b| ~ K / 4.
  check_close("gemm (TF32)", got, want, K / 4.0, 5e-3);
}

// ---------------------------------------------------------------------------------------------
// Softmax and cross-entropy.

struct RowShape {
  int64_t rows, cols;
};
// Warp rows (cols <= 1024) and block rows, one row and many.
const RowShape kRowShapes[] = {{1, 1},    {5, 7},     {37, 1000}, {3, 1025}, {4, 5000},
                               {300, 33}, {1, 10000}, {64, 512},  {129, 2}};

TEST_CASE("cuda parity: softmax and log-softmax, forward and backward") {
  SKIP_WITHOUT_GPU();
  Random rnd(8);
  for (const RowShape& s : kRowShapes) {
    for (bool log : {false, true}) {
      INFO("rows " << s.rows << " cols " << s.cols << (log ? " log-softmax" : " softmax"));
      const int64_t n = s.rows * s.cols;
      auto x = rnd.uniform(n, -6, 6);
      x[0] = 60.0f;  // large logits must not overflow
      std::vector<float> y(n), gx(n);
      ref().softmax(x.data(), y.data(), s.rows, s.cols, log);
      DeviceVector<float> dx(x), dy(unwritten(n));
      gpu().softmax(dx.get(), dy.get(), s.rows, s.cols, log);
      check_close("softmax forward", dy.to_host(), y);

      const auto gy = rnd.uniform(n);
      ref().softmax_backward(y.data(), gy.data(), gx.data(), s.rows, s.cols, log);
      DeviceVector<float> dy_ref(y), dgy(gy), dgx(unwritten(n));
      gpu().softmax_backward(dy_ref.get(), dgy.get(), dgx.get(), s.rows, s.cols, log);
      check_close("softmax backward", dgx.to_host(), gx);
    }
  }
}

TEST_CASE("cuda parity: fused cross-entropy with ignored rows, forward and backward") {
  SKIP_WITHOUT_GPU();
  Random rnd(9);
  for (const RowShape& s : kRowShapes) {
    for (int32_t ignore_index : {0, -100}) {
      INFO("rows " << s.rows << " cols " << s.cols << " ignore_index " << ignore_index);
      const int64_t n = s.rows * s.cols;
      const auto logits = rnd.uniform(n, -8, 8);
      auto targets = rnd.indices(s.rows, 0, static_cast<int32_t>(s.cols - 1));
      for (int64_t r = 0; r < s.rows; r += 3) targets[r] = ignore_index;  // some padding rows
      std::vector<float> loss(s.rows), valid(s.rows), glogits(n);
      ref().cross_entropy(logits.data(), targets.data(), loss.data(), valid.data(), s.rows, s.cols,
                          ignore_index);
      DeviceVector<float> dlogits(logits), dloss(unwritten(s.rows)), dvalid(unwritten(s.rows));
      DeviceVector<int32_t> dtargets(targets);
      gpu().cross_entropy(dlogits.get(), dtargets.get(), dloss.get(), dvalid.get(), s.rows, s.cols,
                          ignore_index);
      check_close("cross_entropy loss", dloss.to_host(), loss);
      check_identical("cross_entropy valid", dvalid.to_host(), valid);

      const auto gloss = rnd.uniform(s.rows);
      ref().cross_entropy_backward(logits.data(), targets.data(), gloss.data(), glogits.data(),
                                   s.rows, s.cols, ignore_index);
      DeviceVector<float> dgloss(gloss), dglogits(unwritten(n));
      gpu().cross_entropy_backward(dlogits.get(), dtargets.get(), dgloss.get(), dglogits.get(),
                                   s.rows, s.cols, ignore_index);
      check_close("cross_entropy backward", dglogits.to_host(), glogits);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Normalisation.

TEST_CASE("cuda parity: layer norm, forward and backward") {
  SKIP_WITHOUT_GPU();
  Random rnd(10);
  for (const RowShape& s : kRowShapes) {
    for (bool affine : {true, false}) {
      INFO("rows " << s.rows << " cols " << s.cols << (affine ? "" : " no gamma/beta"));
      const int64_t n = s.rows * s.cols;
      auto x = rnd.uniform(n, -2, 2);
      for (int64_t i = 0; i < n; i += 2) x[i] += 3.0f;  // rows with a mean away from 0
      const auto gamma = rnd.uniform(s.cols, 0.5, 1.5), beta = rnd.uniform(s.cols);
      const float* g = affine ? gamma.data() : nullptr;
      const float* b = affine ? beta.data() : nullptr;
      const float eps = 1e-3f;
      std::vector<float> y(n), mean(s.rows), rstd(s.rows);
      ref().layer_norm(x.data(), g, b, y.data(), mean.data(), rstd.data(), s.rows, s.cols, eps);
      DeviceVector<float> dx(x), dgamma(gamma), dbeta(beta);
      DeviceVector<float> dy(unwritten(n)), dmean(unwritten(s.rows)), drstd(unwritten(s.rows));
      gpu().layer_norm(dx.get(), affine ? dgamma.get() : nullptr, affine ? dbeta.get() : nullptr,
                       dy.get(), dmean.get(), drstd.get(), s.rows, s.cols, eps);
      check_close("layer_norm y", dy.to_host(), y);
      check_close("layer_norm mean", dmean.to_host(), mean);
      check_close("layer_norm rstd", drstd.to_host(), rstd);

      const auto gy = rnd.uniform(n);
      std::vector<float> gx(n), ggamma(s.cols), gbeta(s.cols);
      ref().layer_norm_backward(x.data(), g, mean.data(), rstd.data(), gy.data(), gx.data(),
                                ggamma.data(), gbeta.data(), s.rows, s.cols);
      DeviceVector<float> dmean_ref(mean), drstd_ref(rstd), dgy(gy), dgx(unwritten(n));
      DeviceVector<float> dggamma(unwritten(s.cols)), dgbeta(unwritten(s.cols));
      gpu().layer_norm_backward(dx.get(), affine ? dgamma.get() : nullptr, dmean_ref.get(),
                                drstd_ref.get(), dgy.get(), dgx.get(), dggamma.get(), dgbeta.get(),
                                s.rows, s.cols);
      check_close("layer_norm gx", dgx.to_host(), gx);
      // Column sums over rows: judged against the sum of |terms| (|xhat| is at most sqrt(cols)).
      const double column_scale = max_column_abs_sum(gy, s.rows, s.cols);
      check_close("layer_norm ggamma", dggamma.to_host(), ggamma,
                  column_scale * std::sqrt(double(s.cols)));
      check_close("layer_norm gbeta", dgbeta.to_host(), gbeta, column_scale);
    }
  }
}

TEST_CASE("cuda parity: batch norm statistics, forward and backward") {
  SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t N, C;
  };
  const Shape shapes[] = {{1, 1}, {7, 3}, {5000, 7}, {200, 300}, {20000, 16}, {33, 1500}, {2, 64}};
  Random rnd(11);
  for (const Shape& s : shapes) {
    INFO("N " << s.N << " C " << s.C);
    const int64_t n = s.N * s.C;
    auto x = rnd.uniform(n, -1, 1);
    for (int64_t i = 0; i < n; ++i) x[i] += 0.5f * float(i % s.C % 3);  // channel offsets
    const float eps = 1e-3f;
    std::vector<float> mean(s.C), var(s.C);
    ref().batch_norm_stats(x.data(), mean.data(), var.data(), s.N, s.C);
    DeviceVector<float> dx(x), dmean(unwritten(s.C)), dvar(unwritten(s.C));
    gpu().batch_norm_stats(dx.get(), dmean.get(), dvar.get(), s.N, s.C);
    check_close("batch_norm mean", dmean.to_host(), mean);
    check_close("batch_norm var", dvar.to_host(), var);

    const auto gamma = rnd.uniform(s.C, 0.5, 1.5), beta = rnd.uniform(s.C);
    DeviceVector<float> dmean_ref(mean), dvar_ref(var), dgamma(gamma), dbeta(beta);
    for (int variant = 0; variant < 3; ++variant) {  // gamma+beta, neither, gamma only
      const bool with_gamma = variant != 1, with_beta = variant == 0;
      INFO("gamma " << with_gamma << " beta " << with_beta);
      std::vector<float> y(n);
      ref().batch_norm_forward(x.data(), mean.data(), var.data(),
                               with_gamma ? gamma.data() : nullptr,
                               with_beta ? beta.data() : nullptr, y.data(), s.N, s.C, eps);
      DeviceVector<float> dy(unwritten(n));
      gpu().batch_norm_forward(dx.get(), dmean_ref.get(), dvar_ref.get(),
                               with_gamma ? dgamma.get() : nullptr,
                               with_beta ? dbeta.get() : nullptr, dy.get(), s.N, s.C, eps);
      check_close("batch_norm_forward", dy.to_host(), y);
    }

    const auto gy = rnd.uniform(n);
    const double column_scale = max_column_abs_sum(gy, s.N, s.C) * 4.0;  // |xhat| stays small
    for (bool training : {true, false}) {
      for (bool with_gamma : {true, false}) {
        INFO((training ? "training" : "inference") << (with_gamma ? " with gamma" : " no gamma"));
        std::vector<float> gx(n), ggamma(s.C), gbeta(s.C);
        ref().batch_norm_backward(
            x.data(), mean.data(), var.data(), with_gamma ? gamma.data() : nullptr, gy.data(),
            gx.data(), with_gamma ? ggamma.data() : nullptr, gbeta.data(), s.N, s.C, eps, training);
        DeviceVector<float> dgy(gy), dgx(unwritten(n));
        DeviceVector<float> dggamma(unwritten(s.C)), dgbeta(unwritten(s.C));
        gpu().batch_norm_backward(dx.get(), dmean_ref.get(), dvar_ref.get(),
                                  with_gamma ? dgamma.get() : nullptr, dgy.get(), dgx.get(),
                                  with_gamma ? dggamma.get() : nullptr, dgbeta.get(), s.N, s.C, eps,
                                  training);
        // In training gx involves sums over N divided by N: their error is ~ eps * sum |terms| / N.
        check_close("batch_norm gx", dgx.to_host(), gx);
        if (with_gamma) check_close("batch_norm ggamma", dggamma.to_host(), ggamma, column_scale);
        check_close("batch_norm gbeta", dgbeta.to_host(), gbeta, column_scale);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Embedding, convolution and pooling.

TEST_CASE("cuda parity: gather_rows and scatter_add_rows with repeated and negative indices") {
  SKIP_WITHOUT_GPU();
  Random rnd(12);
  struct Shape {
    int64_t vocab, row_size, n_idx;
  };
  const Shape shapes[] = {{1, 1, 1}, {10, 7, 50}, {5000, 256, 640}, {3, 512, 2000}, {100, 1, 9}};
  for (const Shape& s : shapes) {
    INFO("vocab " << s.vocab << " row " << s.row_size << " n_idx " << s.n_idx);
    const auto table = rnd.uniform(s.vocab * s.row_size);
    // Negative indices count from the end (ONNX Gather), as on the CPU.
    const auto idx = rnd.indices(s.n_idx, static_cast<int32_t>(-s.vocab), static_cast<int32_t>(s.vocab - 1));
    std::vector<float> out(s.n_idx * s.row_size);
    ref().gather_rows(table.data(), s.vocab, idx.data(), out.data(), s.n_idx, s.row_size);
    DeviceVector<float> dtable(table), dout(unwritten(s.n_idx * s.row_size));
    DeviceVector<int32_t> didx(idx);
    gpu().gather_rows(dtable.get(), s.vocab, didx.get(), dout.get(), s.n_idx, s.row_size);
    check_identical("gather_rows", dout.to_host(), out);

    const auto gout = rnd.uniform(s.n_idx * s.row_size);
    auto gtable = rnd.uniform(s.vocab * s.row_size);  // accumulates into what is there
    DeviceVector<float> dgout(gout), dgtable(gtable);
    ref().scatter_add_rows(gout.data(), idx.data(), gtable.data(), s.vocab, s.n_idx, s.row_size);
    gpu().scatter_add_rows(dgout.get(), didx.get(), dgtable.get(), s.vocab, s.n_idx, s.row_size);
    // Atomic additions come in any order: judge against the largest count of additions.
    check_close("scatter_add_rows", dgtable.to_host(), gtable, double(s.n_idx) / s.vocab + 2);
  }
}

TEST_CASE("cuda parity: im2col and col2im") {
  SKIP_WITHOUT_GPU();
  Random rnd(13);
  for (const Conv2dGeometry& g : conv_geometries(130)) {
    INFO(describe(g));
    const int64_t in_size = g.N * g.H * g.W * g.C;
    const int64_t cols_size = g.N * g.OH * g.OW * g.KH * g.KW * g.C;
    const auto x = rnd.uniform(in_size);
    std::vector<float> cols(cols_size);
    ref().im2col(x.data(), cols.data(), g);
    DeviceVector<float> dx(x), dcols(unwritten(cols_size));
    gpu().im2col(dx.get(), dcols.get(), g);
    check_identical("im2col", dcols.to_host(), cols);

    const auto gcols = rnd.uniform(cols_size);
    auto gx = rnd.uniform(in_size);  // col2im accumulates
    DeviceVector<float> dgcols(gcols), dgx(gx);
    ref().col2im(gcols.data(), gx.data(), g);
    gpu().col2im(dgcols.get(), dgx.get(), g);
    check_close("col2im", dgx.to_host(), gx, double(g.KH * g.KW));
  }
}

// Geometries with what Keras's same/valid never produce: dilation, explicit and asymmetric
// padding, windows hanging past the padding (ceil_mode) and count_include_pad. Output sizes from
// the ONNX/PyTorch formula.
std::vector<Conv2dGeometry> option_geometries(uint32_t seed, bool dilate, bool include_pad) {
  Random rnd(seed);
  std::vector<Conv2dGeometry> out;
  while (out.size() < 30) {
    Conv2dGeometry g{rnd.integer(1, 3), rnd.integer(3, 13), rnd.integer(3, 13), rnd.integer(1, 9),
                     rnd.integer(1, 4), rnd.integer(1, 4), rnd.integer(1, 3), rnd.integer(1, 3),
                     0, 0, 0, 0};
    g.DH = dilate ? rnd.integer(1, 3) : 1;
    g.DW = dilate ? rnd.integer(1, 3) : 1;
    const int64_t extent_h = (g.KH - 1) * g.DH + 1, extent_w = (g.KW - 1) * g.DW + 1;
    g.pad_top = rnd.integer(0, extent_h - 1);
    g.pad_bottom = rnd.integer(0, extent_h - 1);
    g.pad_left = rnd.integer(0, extent_w - 1);
    g.pad_right = rnd.integer(0, extent_w - 1);
    const bool ceil_mode = rnd.integer(0, 1) == 1;
    auto size = [&](int64_t in, int64_t extent, int64_t s, int64_t before, int64_t after) {
      const int64_t span = in + before + after - extent;
      if (span < 0) return int64_t(0);
      int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
      if (ceil_mode && (o - 1) * s >= in + before) --o;
      return o;
    };
    g.OH = size(g.H, extent_h, g.SH, g.pad_top, g.pad_bottom);
    g.OW = size(g.W, extent_w, g.SW, g.pad_left, g.pad_right);
    g.count_include_pad = include_pad && rnd.integer(0, 1) == 1;
    if (g.OH > 0 && g.OW > 0) out.push_back(g);
  }
  return out;
}

TEST_CASE("cuda parity: dilated im2col/col2im, pooling with ceil_mode, count_include_pad") {
  SKIP_WITHOUT_GPU();
  Random rnd(15);
  for (const Conv2dGeometry& g : option_geometries(150, true, false)) {
    INFO(describe(g) << " dilation " << g.DH << "x" << g.DW << " pad after " << g.pad_bottom
                     << "," << g.pad_right);
    const int64_t in_size = g.N * g.H * g.W * g.C;
    const int64_t cols_size = g.N * g.OH * g.OW * g.KH * g.KW * g.C;
    const int64_t out_size = g.N * g.OH * g.OW * g.C;
    const auto x = rnd.uniform(in_size);
    std::vector<float> cols(cols_size);
    ref().im2col(x.data(), cols.data(), g);
    DeviceVector<float> dx(x), dcols(unwritten(cols_size));
    gpu().im2col(dx.get(), dcols.get(), g);
    check_identical("dilated im2col", dcols.to_host(), cols);
    const auto gcols = rnd.uniform(cols_size);
    auto gx = rnd.uniform(in_size);
    DeviceVector<float> dgcols(gcols), dgx(gx);
    ref().col2im(gcols.data(), gx.data(), g);
    gpu().col2im(dgcols.get(), dgx.get(), g);
    check_close("dilated col2im", dgx.to_host(), gx, double(g.KH * g.KW));

    std::vector<float> y(out_size);
    std::vector<int32_t> argmax(out_size);
    ref().max_pool(x.data(), y.data(), argmax.data(), g);
    DeviceVector<float> dy(unwritten(out_size));
    DeviceVector<int32_t> dargmax(unwritten_i32(out_size));
    gpu().max_pool(dx.get(), dy.get(), dargmax.get(), g);
    check_identical("dilated max_pool", dy.to_host(), y);
    check_equal("dilated max_pool argmax", dargmax.to_host(), argmax);
    const auto gy = rnd.uniform(out_size);
    std::vector<float> gxm(in_size);
    ref().max_pool_backward(gy.data(), argmax.data(), gxm.data(), g);
    DeviceVector<float> dgy(gy), dgxm(unwritten(in_size));
    DeviceVector<int32_t> dargmax_ref(argmax);
    gpu().max_pool_backward(dgy.get(), dargmax_ref.get(), dgxm.get(), g);
    check_close("dilated max_pool_backward", dgxm.to_host(), gxm, double(g.KH * g.KW));
  }
  for (const Conv2dGeometry& g : option_geometries(151, false, true)) {
    INFO(describe(g) << " pad after " << g.pad_bottom << "," << g.pad_right
                     << " count_include_pad " << g.count_include_pad);
    const int64_t in_size = g.N * g.H * g.W * g.C;
    const int64_t out_size = g.N * g.OH * g.OW * g.C;
    const auto x = rnd.uniform(in_size);
    std::vector<float> y(out_size), gx(in_size);
    ref().avg_pool(x.data(), y.data(), g);
    DeviceVector<float> dx(x), dy(unwritten(out_size));
    gpu().avg_pool(dx.get(), dy.get(), g);
    check_close("avg_pool (options)", dy.to_host(), y);
    const auto gy = rnd.uniform(out_size);
    ref().avg_pool_backward(gy.data(), gx.data(), g);
    DeviceVector<float> dgy(gy), dgx(unwritten(in_size));
    gpu().avg_pool_backward(dgy.get(), dgx.get(), g);
    check_close("avg_pool_backward (options)", dgx.to_host(), gx);
  }
}

TEST_CASE("cuda parity: max and average pooling, forward and backward") {
  SKIP_WITHOUT_GPU();
  Random rnd(14);
  for (const Conv2dGeometry& g : conv_geometries(140)) {
    INFO(describe(g));
    const int64_t in_size = g.N * g.H * g.W * g.C;
    const int64_t out_size = g.N * g.OH * g.OW * g.C;
    auto x = rnd.with_ties(in_size, 4);      // ties: the first cell in (kh, kw) order must win
    if (in_size > 3) x[in_size / 2] = kNaN;  // ... and a NaN must never be hidden
    std::vector<float> y(out_size);
    std::vector<int32_t> argmax(out_size);
    ref().max_pool(x.data(), y.data(), argmax.data(), g);
    DeviceVector<float> dx(x), dy(unwritten(out_size));
    DeviceVector<int32_t> dargmax(unwritten_i32(out_size));
    gpu().max_pool(dx.get(), dy.get(), dargmax.get(), g);
    check_identical("max_pool", dy.to_host(), y);
    check_equal("max_pool argmax", dargmax.to_host(), argmax);
    DeviceVector<float> dy_inference(unwritten(out_size));
    gpu().max_pool(dx.get(), dy_inference.get(), nullptr, g);  // no argmax (inference)
    check_identical("max_pool without argmax", dy_inference.to_host(), y);

    const auto gy = rnd.uniform(out_size);
    std::vector<float> gx(in_size);
    ref().max_pool_backward(gy.data(), argmax.data(), gx.data(), g);
    DeviceVector<float> dgy(gy), dgx(unwritten(in_size));
    DeviceVector<int32_t> dargmax_ref(argmax);
    gpu().max_pool_backward(dgy.get(), dargmax_ref.get(), dgx.get(), g);
    check_close("max_pool_backward", dgx.to_host(), gx, double(g.KH * g.KW));

    const auto xa = rnd.uniform(in_size);
    std::vector<float> ya(out_size), gxa(in_size);
    ref().avg_pool(xa.data(), ya.data(), g);
    DeviceVector<float> dxa(xa), dya(unwritten(out_size));
    gpu().avg_pool(dxa.get(), dya.get(), g);
    check_close("avg_pool", dya.to_host(), ya);

    ref().avg_pool_backward(gy.data(), gxa.data(), g);
    DeviceVector<float> dgxa(unwritten(in_size));
    gpu().avg_pool_backward(dgy.get(), dgxa.get(), g);
    check_close("avg_pool_backward", dgxa.to_host(), gxa);
  }
}

// ---------------------------------------------------------------------------------------------
// Dropout, GRU, optimizers.

TEST_CASE("cuda parity: dropout masks are bit-identical to the CPU's") {
  SKIP_WITHOUT_GPU();
  struct Case {
    int64_t n;
    float p;
    uint64_t seed, offset;
  };
  const Case cases[] = {{1, 0.5f, 1, 0},          {1000, 0.1f, 42, 0},
                        {100003, 0.5f, 7, 12345}, {4097, 0.9f, 0xDEADBEEFull, uint64_t(1) << 40},
                        {256, 0.0f, 3, 5},        {256, 1.0f, 3, 5}};
  for (const Case& c : cases) {
    INFO("n " << c.n << " p " << c.p << " seed " << c.seed << " offset " << c.offset);
    std::vector<float> mask(c.n);
    ref().dropout_mask(mask.data(), c.n, c.p, c.seed, c.offset);
    DeviceVector<float> dmask(unwritten(c.n));
    gpu().dropout_mask(dmask.get(), c.n, c.p, c.seed, c.offset);
    check_identical("dropout_mask", dmask.to_host(), mask);
  }
}

TEST_CASE("cuda parity: GRU step, forward and backward") {
  SKIP_WITHOUT_GPU();
  Random rnd(15);
  struct Shape {
    int64_t B, U;
  };
  const Shape shapes[] = {{1, 1}, {3, 7}, {64, 512}, {5, 33}, {128, 100}};
  for (const Shape& s : shapes) {
    INFO("B " << s.B << " U " << s.U);
    const int64_t n = s.B * s.U, n3 = 3 * n;
    const auto xp = rnd.uniform(n3, -2, 2), hp = rnd.uniform(n3, -2, 2);
    const auto h_prev = rnd.uniform(n);
    std::vector<float> h_new(n), gates(n3);
    ref().gru_step(xp.data(), hp.data(), h_prev.data(), h_new.data(), gates.data(), s.B, s.U);
    DeviceVector<float> dxp(xp), dhp(hp), dh_prev(h_prev);
    DeviceVector<float> dh_new(unwritten(n)), dgates(unwritten(n3));
    gpu().gru_step(dxp.get(), dhp.get(), dh_prev.get(), dh_new.get(), dgates.get(), s.B, s.U);
    check_close("gru h_new", dh_new.to_host(), h_new);
    check_close("gru gates", dgates.to_host(), gates);

    const auto gh = rnd.uniform(n);
    std::vector<float> dxp_ref(n3), dhp_ref(n3), dh_prev_ref(n);
    ref().gru_step_backward(gh.data(), gates.data(), hp.data(), h_prev.data(), dxp_ref.data(),
                            dhp_ref.data(), dh_prev_ref.data(), s.B, s.U);
    DeviceVector<float> dgh(gh), dgates_ref(gates);
    DeviceVector<float> ddxp(unwritten(n3)), ddhp(unwritten(n3)), ddh_prev(unwritten(n));
    gpu().gru_step_backward(dgh.get(), dgates_ref.get(), dhp.get(), dh_prev.get(), ddxp.get(),
                            ddhp.get(), ddh_prev.get(), s.B, s.U);
    check_close("gru dxp", ddxp.to_host(), dxp_ref);
    check_close("gru dhp", ddhp.to_host(), dhp_ref);
    check_close("gru dh_prev", ddh_prev.to_host(), dh_prev_ref);
  }
}

TEST_CASE("cuda parity: GRU step with the reset gate before the matmul, forward and backward") {
  SKIP_WITHOUT_GPU();
  Random rnd(16);
  struct Shape {
    int64_t B, U;
  };
  const Shape shapes[] = {{1, 1}, {3, 7}, {64, 512}, {5, 33}, {128, 100}};
  for (const Shape& s : shapes) {
    INFO("B " << s.B << " U " << s.U);
    const int64_t n = s.B * s.U, n3 = 3 * n;
    const auto xp = rnd.uniform(n3, -2, 2), hp = rnd.uniform(n3, -2, 2);
    const auto h_prev = rnd.uniform(n);
    // Part 1 (z, r, r * h_prev), then part 2 (c, h_new) on the same gates buffer.
    std::vector<float> gates(n3), rh(n), h_new(n);
    ref().gru_gates_reset_before(xp.data(), hp.data(), h_prev.data(), gates.data(), rh.data(),
                                 s.B, s.U);
    ref().gru_output_reset_before(xp.data(), hp.data(), h_prev.data(), gates.data(), h_new.data(),
                                  s.B, s.U);
    DeviceVector<float> dxp(xp), dhp(hp), dh_prev(h_prev);
    DeviceVector<float> dgates(unwritten(n3)), drh_out(unwritten(n)), dh_new(unwritten(n));
    gpu().gru_gates_reset_before(dxp.get(), dhp.get(), dh_prev.get(), dgates.get(), drh_out.get(),
                                 s.B, s.U);
    gpu().gru_output_reset_before(dxp.get(), dhp.get(), dh_prev.get(), dgates.get(), dh_new.get(),
                                  s.B, s.U);
    check_close("gru reset-before gates", dgates.to_host(), gates);
    check_close("gru reset-before r*h", drh_out.to_host(), rh);
    check_close("gru reset-before h_new", dh_new.to_host(), h_new);

    const auto gh = rnd.uniform(n), drh = rnd.uniform(n);
    std::vector<float> dpre(n3), dh_prev_ref(n);
    ref().gru_output_reset_before_backward(gh.data(), gates.data(), h_prev.data(), dpre.data(),
                                           dh_prev_ref.data(), s.B, s.U);
    ref().gru_gates_reset_before_backward(drh.data(), gates.data(), h_prev.data(), dpre.data(),
                                          dh_prev_ref.data(), s.B, s.U);
    DeviceVector<float> dgh(gh), ddrh(drh), dgates_ref(gates);
    DeviceVector<float> ddpre(unwritten(n3)), ddh_prev(unwritten(n));
    gpu().gru_output_reset_before_backward(dgh.get(), dgates_ref.get(), dh_prev.get(), ddpre.get(),
                                           ddh_prev.get(), s.B, s.U);
    gpu().gru_gates_reset_before_backward(ddrh.get(), dgates_ref.get(), dh_prev.get(), ddpre.get(),
                                          ddh_prev.get(), s.B, s.U);
    check_close("gru reset-before dpre", ddpre.to_host(), dpre);
    check_close("gru reset-before dh_prev", ddh_prev.to_host(), dh_prev_ref);
  }
}

TEST_CASE("cuda parity: Adam and SGD (momentum, Nesterov, none) updates over several steps") {
  SKIP_WITHOUT_GPU();
  Random rnd(16);
  for (int64_t n : {1, 1000, 100003}) {
    INFO("n = " << n);
    auto w = rnd.uniform(n), m = std::vector<float>(n, 0.0f), v = std::vector<float>(n, 0.0f);
    DeviceVector<float> dw(w), dm(m), dv(v);
    for (int step = 1; step <= 3; ++step) {
      const auto g = rnd.uniform(n);
      DeviceVector<float> dg(g);
      const float lr_t = 0.001f * std::sqrt(1.0f - std::pow(0.999f, float(step))) /
                         (1.0f - std::pow(0.9f, float(step)));
      ref().adam_update(w.data(), g.data(), m.data(), v.data(), n, lr_t, 0.9f, 0.999f, 1e-7f);
      gpu().adam_update(dw.get(), dg.get(), dm.get(), dv.get(), n, lr_t, 0.9f, 0.999f, 1e-7f);
    }
    check_close("adam w", dw.to_host(), w);
    check_close("adam m", dm.to_host(), m);
    check_close("adam v", dv.to_host(), v);

    for (int variant = 0; variant < 3; ++variant) {  // momentum, Nesterov, plain (no velocity)
      const bool nesterov = variant == 1;
      const float momentum = variant == 2 ? 0.0f : 0.9f;
      INFO("sgd momentum " << momentum << " nesterov " << nesterov);
      auto ws = rnd.uniform(n), vel = std::vector<float>(n, 0.0f);
      DeviceVector<float> dws(ws), dvel(vel);
      for (int step = 0; step < 3; ++step) {
        const auto g = rnd.uniform(n);
        DeviceVector<float> dg(g);
        ref().sgd_update(ws.data(), g.data(), variant == 2 ? nullptr : vel.data(), n, 0.01f,
                         momentum, nesterov);
        gpu().sgd_update(dws.get(), dg.get(), variant == 2 ? nullptr : dvel.get(), n, 0.01f,
                         momentum, nesterov);
      }
      check_close("sgd w", dws.to_host(), ws);
      check_close("sgd velocity", dvel.to_host(), vel);
    }
  }
}

// Adam fused over many tensors: one launch over a device table of every tensor, against the CPU
// per-tensor update (the reference) and against the CUDA per-tensor kernel, which must give the
// same bits (both run the same per-element code). Odd sizes, an empty and a one-element tensor,
// sizes on either side of the kernel's chunk, and a hundred small tensors (many table rows).
TEST_CASE("cuda parity: Adam fused over many tensors (adam_update_multi) vs per tensor") {
  SKIP_WITHOUT_GPU();
  Random rnd(17);
  std::vector<int64_t> sizes = {0, 1, 100003, 2047, 2048, 2049, 1, 0, 4097};
  for (int i = 0; i < 12; ++i) sizes.push_back(2 * rnd.integer(0, 20000) + 1);
  for (int i = 0; i < 100; ++i) sizes.push_back(rnd.integer(1, 130));
  const size_t count = sizes.size();
  std::vector<std::vector<float>> w(count), m(count), v(count);
  std::vector<std::unique_ptr<DeviceVector<float>>> dw, dm, dv, dw1, dm1, dv1;
  for (size_t k = 0; k < count; ++k) {
    w[k] = rnd.uniform(sizes[k]);
    m[k] = std::vector<float>(sizes[k], 0.0f);
    v[k] = std::vector<float>(sizes[k], 0.0f);
    dw.push_back(std::make_unique<DeviceVector<float>>(w[k]));
    dm.push_back(std::make_unique<DeviceVector<float>>(m[k]));
    dv.push_back(std::make_unique<DeviceVector<float>>(v[k]));
    dw1.push_back(std::make_unique<DeviceVector<float>>(w[k]));
    dm1.push_back(std::make_unique<DeviceVector<float>>(m[k]));
    dv1.push_back(std::make_unique<DeviceVector<float>>(v[k]));
  }
  for (int step = 1; step <= 3; ++step) {
    const float lr_t = 0.001f * std::sqrt(1.0f - std::pow(0.999f, float(step))) /
                       (1.0f - std::pow(0.9f, float(step)));
    std::vector<std::unique_ptr<DeviceVector<float>>> dg;
    std::vector<float*> pw(count), pm(count), pv(count);
    std::vector<const float*> pg(count);
    for (size_t k = 0; k < count; ++k) {
      const auto g = rnd.uniform(sizes[k], -2.0, 2.0);
      dg.push_back(std::make_unique<DeviceVector<float>>(g));
      ref().adam_update(w[k].data(), g.data(), m[k].data(), v[k].data(), sizes[k], lr_t, 0.9f,
                        0.999f, 1e-7f);
      gpu().adam_update(dw1[k]->get(), dg[k]->get(), dm1[k]->get(), dv1[k]->get(), sizes[k], lr_t,
                        0.9f, 0.999f, 1e-7f);
      pw[k] = dw[k]->get();
      pg[k] = dg[k]->get();
      pm[k] = dm[k]->get();
      pv[k] = dv[k]->get();
    }
    gpu().adam_update_multi(pw.data(), pg.data(), pm.data(), pv.data(), sizes.data(),
                            static_cast<int64_t>(count), lr_t, 0.9f, 0.999f, 1e-7f);
  }
  for (size_t k = 0; k < count; ++k) {
    INFO("tensor " << k << " of " << sizes[k] << " elements");
    const auto gw = dw[k]->to_host(), gm = dm[k]->to_host(), gv = dv[k]->to_host();
    check_close("adam multi w", gw, w[k]);
    check_close("adam multi m", gm, m[k]);
    check_close("adam multi v", gv, v[k]);
    CHECK(gw == dw1[k]->to_host());  // bit-identical to the per-tensor kernel
    CHECK(gm == dm1[k]->to_host());
    CHECK(gv == dv1[k]->to_host());
  }
}

// ---------------------------------------------------------------------------------------------
// Empty inputs.

TEST_CASE("cuda kernels with zero-size inputs launch nothing and fail nothing") {
  SKIP_WITHOUT_GPU();
  DeviceVector<float> f(std::vector<float>(8, 1.0f));
  DeviceVector<int32_t> i(std::vector<int32_t>(8, 0));
  float* p = f.get();
  int32_t* q = i.get();
  const Kernels<float>& k = gpu();
  k.fill(p, 0, 1.0f);
  k.cast_from_i32(q, p, 0);
  k.cast_to_i32(p, q, 0);
  k.axpy(0, 1.0f, p, p);
  k.copy_2d(p, 1, p, 1, 0, 5);
  k.copy_2d(p, 1, p, 1, 5, 0);
  k.unary(UnaryOp::Exp, p, p, 0, 0.0f);
  k.unary_backward(UnaryOp::Exp, p, p, p, p, 0, 0.0f);
  BroadcastLayout empty_layout;
  empty_layout.rank = 2;
  empty_layout.shape[0] = 0;
  empty_layout.shape[1] = 3;
  k.binary(BinaryOp::Add, p, p, p, empty_layout);
  k.where(p, p, p, p, 0);
  k.reduce_sum(p, p, 0, 4, 4);
  k.reduce_sum(p, p, 4, 4, 0);
  k.reduce_prod(p, p, 0, 4, 4);
  k.reduce_prod_backward(p, p, p, 0, 4, 4);
  k.reduce_prod_backward(p, p, p, 4, 4, 0);
  k.binary_backward(BinaryOp::Pow, p, p, p, p, p, p, empty_layout);
  k.reduce_max(p, p, q, 0, 4, 1);
  k.reduce_max_backward(p, q, p, 0, 4, 1);
  k.gemm(false, false, 0, 4, 4, 1.0f, p, 4, p, 4, 0.0f, p, 4);
  k.gemm(false, false, 4, 0, 4, 1.0f, p, 4, p, 1, 0.0f, p, 1);
  k.gemm_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, p, 2, 4, 0);
  k.softmax(p, p, 0, 5, false);
  k.softmax_backward(p, p, p, 0, 5, true);
  k.cross_entropy(p, q, p, p, 0, 5, 0);
  k.cross_entropy_backward(p, q, p, p, 0, 5, 0);
  k.layer_norm(p, p, p, p, p, p, 0, 5, 1e-3f);
  k.layer_norm_backward(p, p, p, p, p, p, p, p, 0, 0);
  k.batch_norm_stats(p, p, p, 5, 0);
  k.batch_norm_forward(p, p, p, p, p, p, 0, 3, 1e-3f);
  k.batch_norm_backward(p, p, p, p, p, p, p, p, 5, 0, 1e-3f, true);
  k.gather_rows(p, 0, q, p, 0, 3);
  k.scatter_add_rows(p, q, p, 0, 0, 3);
  const Conv2dGeometry g{0, 4, 4, 2, 3, 3, 1, 1, 1, 1, 4, 4};
  k.im2col(p, p, g);
  k.col2im(p, p, g);
  k.max_pool(p, p, q, g);
  k.max_pool_backward(p, q, p, g);
  k.avg_pool(p, p, g);
  k.avg_pool_backward(p, p, g);
  k.dropout_mask(p, 0, 0.5f, 1, 0);
  k.gru_step(p, p, p, p, p, 0, 4);
  k.gru_step_backward(p, p, p, p, p, p, p, 0, 4);
  k.gru_gates_reset_before(p, p, p, p, p, 0, 4);
  k.gru_output_reset_before(p, p, p, p, p, 0, 4);
  k.gru_output_reset_before_backward(p, p, p, p, p, 0, 4);
  k.gru_gates_reset_before_backward(p, p, p, p, p, 0, 4);
  k.argmax_rows(p, q, 0, 5);
  k.topk_rows(p, p, q, 0, 5, 2);
  k.adam_update(p, p, p, p, 0, 0.1f, 0.9f, 0.999f, 1e-7f);
  k.adam_update_multi(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 0.1f, 0.9f, 0.999f, 1e-7f);
  {
    float* pw[2] = {p, p};
    const float* pg[2] = {p, p};
    const int64_t n[2] = {0, 0};
    k.adam_update_multi(pw, pg, pw, pw, n, 2, 0.1f, 0.9f, 0.999f, 1e-7f);
  }
  k.sgd_update(p, p, p, 0, 0.1f, 0.9f, false);
  gpu_api().fill_i32(q, 0, 1);
  gpu_api().copy_on_device(p, p, 0);
  StridedLayout strided;
  strided.rank = 1;
  strided.shape[0] = 0;
  strided.strides[0] = 1;
  gpu_api().copy_strided(p, 4, strided, p);
  CHECK_NOTHROW(gpu_api().synchronize());
  CHECK(f.to_host() == std::vector<float>(8, 1.0f));  // nothing was written
}

#endif  // GLIMPSE_WITH_CUDA
