// The op profiler's table (see profiler.h).
#include "tensor/profiler.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <utility>

namespace glimpse::profiler {
namespace {

std::atomic<bool> g_enabled{false};
std::mutex g_mutex;
std::map<std::pair<std::string, std::string>, Entry>& table() {
  static std::map<std::pair<std::string, std::string>, Entry> entries;
  return entries;
}

}  // namespace

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  table().clear();
}

std::vector<Entry> entries() {
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [key, entry] : table()) out.push_back(entry);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Entry& a, const Entry& b) { return a.seconds > b.seconds; });
  return out;
}

Scope::~Scope() {
  if (!op_) return;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::lock_guard<std::mutex> lock(g_mutex);
  Entry& e = table()[{op_, shape_}];
  if (e.calls == 0) {
    e.op = op_;
    e.shape = shape_;
  }
  ++e.calls;
  e.seconds += seconds;
  e.flops += flops_;
}

}  // namespace glimpse::profiler
