// The CPU caching allocator behind Storage (tensor/cpu_allocator.h): reuse by bucket, statistics,
// release, and concurrent use from several threads.
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "tensor/cpu_allocator.h"
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
