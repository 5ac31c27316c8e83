// Opt-in timing of individual forward ops, to see where a network's time goes
// (`bench_inception --profile`). Off by default; then an instrumented op pays one atomic load.
//
// Entries are keyed by op name and shape ("conv2d_bias_activation", "1x17x17x1088 k1x1/1 ->
// 192"), so the 20 identical convolutions of a repeated block add up in one row. Times are host
// wall-clock around the op: on the CPU the whole op, on a GPU only the launch (kernels run
// asynchronously), so profile CPU runs only.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace glimpse::profiler {

void set_enabled(bool on);
bool enabled();
void reset();

struct Entry {
  std::string op, shape;
  int64_t calls = 0;
  double seconds = 0;  // summed over the calls
  double flops = 0;    // summed over the calls (0 where the op did not say)
};
// Every entry since the last reset, the most time first.
std::vector<Entry> entries();

// Times its own lifetime into the entry (op, describe()) when profiling is on at construction;
// `describe` is called only then, so building the shape text costs nothing otherwise.
class Scope {
 public:
  template <class Describe>
  Scope(const char* op, Describe&& describe, double flops = 0) {
    if (!enabled()) return;
    op_ = op;
    shape_ = describe();
    flops_ = flops;
    start_ = std::chrono::steady_clock::now();
  }
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* op_ = nullptr;  // null: not recording
  std::string shape_;
  double flops_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace glimpse::profiler
