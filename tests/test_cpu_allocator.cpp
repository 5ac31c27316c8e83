// The CPU caching allocator behind Storage (tensor/cpu/allocator.h): reuse by bucket, statistics,
// release, concurrent use from several threads, and the size classes it shares with the CUDA
// allocator.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tensor/cpu/allocator.h"
#include "tensor/size_classes.h"
#include "tensor/tensor.h"

using namespace glimpse;

TEST_CASE("a freed large block is handed out again for a request of the same bucket") {
  if (!cpu::cpu_caching_enabled()) {
    MESSAGE("GLIMPSE_CPU_NO_CACHE is set: cache reuse not tested");
    return;
  }
  cpu::release_cpu_cached_memory();
  void* first = nullptr;
  {
    Tensor a = Tensor::empty({1000, 1000});  // 4 MB
    first = a.data<float>();
    CHECK(cpu::cpu_memory_stats().bytes_in_use >= 4000000);
  }
  const cpu::CpuMemoryStats after_free = cpu::cpu_memory_stats();
  CHECK(after_free.bytes_cached >= 4000000);
  const uint64_t hits = after_free.cache_hits;
  {
    Tensor b = Tensor::empty({999, 1001});  // 3,999,996 bytes: the same bucket
    CHECK(b.data<float>() == first);
    CHECK(cpu::cpu_memory_stats().cache_hits == hits + 1);
    b.fill_(2.0);  // the whole block is usable
    CHECK(b.to_vector()[999 * 1001 - 1] == 2.0f);
  }
  cpu::release_cpu_cached_memory();
  CHECK(cpu::cpu_memory_stats().bytes_cached == 0);
}

TEST_CASE("small tensors bypass the cache; in-use blocks survive a release") {
  cpu::release_cpu_cached_memory();
  const size_t before = cpu::cpu_memory_stats().bytes_in_use;
  Tensor small = Tensor::ones({10});
  CHECK(cpu::cpu_memory_stats().bytes_in_use == before);
  Tensor big = Tensor::full({300, 300}, 3.0);  // 360 KB
  cpu::release_cpu_cached_memory();
  CHECK(big.to_vector()[300 * 300 - 1] == 3.0f);
  CHECK(small.to_vector()[9] == 1.0f);
}

TEST_CASE("concurrent allocation from several threads") {
  std::vector<std::thread> workers;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([t, &ok] {
      bool good = true;
      for (int i = 0; i < 200; ++i) {
        const int64_t n = 20000 + 4096 * ((i * 7 + t) % 13);
        Tensor x = Tensor::full({n}, static_cast<double>(t));
        const float* p = x.data<float>();
        good = good && p[0] == static_cast<float>(t) && p[n - 1] == static_cast<float>(t);
      }
      ok[t] = good ? 1 : 0;
    });
  }
  for (auto& w : workers) w.join();
  for (int t = 0; t < 4; ++t) CHECK(ok[t] == 1);
  cpu::release_cpu_cached_memory();
  CHECK(cpu::cpu_memory_stats().bytes_cached == 0);
}

// The size classes both caching allocators use (tensor/size_classes.h), checked against their
// definition: at most 12.5% rounding above the threshold, multiples of the small step below it.
TEST_CASE("size classes: bounded waste, idempotent, monotone, 8 per power of two") {
  for (const SizeClasses& classes : {SizeClasses{512, size_t(1) << 20, "cuda alloc"},
                                     SizeClasses{4096, size_t(32) << 10, "cpu alloc"}}) {
    INFO(classes.owner);
    CHECK(classes.round(0) == classes.small_step);
    size_t previous = 0;
    std::mt19937_64 gen(7);
    std::vector<size_t> sizes;
    for (size_t b = 1; b < (size_t(1) << 34); b = b * 3 / 2 + 1) sizes.push_back(b);
    for (int i = 0; i < 2000; ++i) sizes.push_back(gen() % (size_t(1) << 32));
    std::sort(sizes.begin(), sizes.end());
    for (size_t b : sizes) {
      const size_t c = classes.round(b);
      INFO("request " << b << " class " << c);
      REQUIRE(c >= b);
      REQUIRE(c >= previous);  // a larger request never gets a smaller class
      REQUIRE(classes.round(c) == c);
      REQUIRE(c % classes.small_step == 0);
      if (b > classes.large_threshold) {
        REQUIRE(double(c - b) <= double(b) / 8);
      } else {
        REQUIRE(c - b < classes.small_step);
      }
      previous = c;
    }
    // Exactly 8 classes between 2^k and 2^(k+1) above the threshold.
    const size_t p = classes.large_threshold * 4;
    std::vector<size_t> distinct;
    for (size_t b = p + 1; b <= 2 * p; b += 64)
      if (distinct.empty() || distinct.back() != classes.round(b)) distinct.push_back(classes.round(b));
    CHECK(distinct.size() == 8);
    const std::string expected = std::string(classes.owner) + ": request of";
    CHECK_THROWS_WITH(classes.round(size_t(1) << 63), doctest::Contains(expected.c_str()));
  }
}
