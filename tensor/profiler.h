// Seeing what the framework does (docs/tutorial.md, "Seeing what the framework does"). Three
// views of the same op scopes, each off by default:
//
//   * the op table (`bench_inception --profile`): set_enabled(true), then entries(). Entries are
//     keyed by op name and shape ("conv2d_bias_activation", "1x17x17x1088 k1x1/1 -> 192"), so the
//     20 identical convolutions of a repeated block add up in one row. Only the regions that open
//     a `Scope` (convolution, pooling, concat) are tabled.
//   * GLIMPSE_DEBUG=1 (environment, read once at startup; set_debug_level() in code): every op
//     prints a line to stderr as it finishes: name, input shapes -> output shapes, device, wall
//     time and GFLOP/s where the op reports its flop count (matmul, convolutions, the GRU, and
//     whatever contains them, e.g. a Dense layer). An op built from other ops opens a "{" line,
//     its inner ops follow indented, and "}" closes it with the totals. GLIMPSE_DEBUG=2 also prints
//     the backward nodes as autograd runs them ("tanh.backward") with the ops they call, and after
//     every output a summary of its values (min, max, mean of the finite values, NaN and Inf
//     counts); the first output holding a NaN or Inf is marked "<-- first NaN/Inf".
//   * glimpse::trace: a Chrome / Perfetto trace (Trace Event JSON) of the same scopes.
//
// Times are host wall-clock. While debug output or a trace is on, an op on a CUDA tensor
// synchronises the device before and after it, so its time is the kernels' run time, not the
// launch time (the run is slower for it). The op table does not synchronise: profile CPU runs.
//
// Cost when everything is off: an instrumented op pays one relaxed atomic load.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace glimpse::profiler {

// ---- the op table -----------------------------------------------------------------------------
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

// ---- debug output -----------------------------------------------------------------------------
// 0 off, 1 ops, 2 ops + backward nodes + value summaries. The start value is GLIMPSE_DEBUG's.
int debug_level();
void set_debug_level(int level);
// Where the debug lines go (std::cerr by default; null restores it). Not owned.
void set_debug_stream(std::ostream* out);

namespace detail {
inline constexpr unsigned kTable = 1, kDebug = 2, kTrace = 4;
extern std::atomic<unsigned> g_on;  // which of the views above are on
inline unsigned on() { return g_on.load(std::memory_order_relaxed); }
// Debug output or tracing: ops open frames.
inline bool observing() { return (on() & (kDebug | kTrace)) != 0; }
void add_flops_slow(double flops);
}  // namespace detail

// Adds to the flop count of the innermost open frame (the op or backward node running now).
inline void add_flops(double flops) {
  if (detail::observing()) detail::add_flops_slow(flops);
}

// Times its own lifetime into the table entry (op, describe()) when the table is on at
// construction; `describe` is called only then, so building the shape text costs nothing
// otherwise. With debug output or a trace on, its flops are added to the enclosing op's frame.
class Scope {
 public:
  template <class Describe>
  Scope(const char* op, Describe&& describe, double flops = 0) {
    const unsigned on = detail::on();
    if (on == 0) return;
    if (on & (detail::kDebug | detail::kTrace)) detail::add_flops_slow(flops);
    if (!(on & detail::kTable)) return;
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

// ---- frames: what debug output and the trace show ---------------------------------------------
enum class FrameKind : uint8_t {
  Op,        // a forward op (GLIMPSE_OP_SCOPE)
  Backward,  // an autograd node's backward closure, named "<op>.backward"
  Region,    // anything else worth a name: a layer, an optimizer step
};

// One op (or backward node, or region) as it runs, when debug output or a trace is on at
// construction; otherwise it does nothing. Frames nest per thread: a frame opened while another
// is open is shown inside it. `inputs` are Tensors or vectors of Tensors (their shapes are shown);
// other arguments are ignored, so an op can pass all of its parameters.
class Frame {
 public:
  template <class... Inputs>
  Frame(FrameKind kind, std::string_view name, std::string_view suffix, const Inputs&... inputs) {
    if (!detail::observing()) return;
    if (!open(kind, name, suffix)) return;
    (input(inputs), ...);
    begin();
  }
  explicit Frame(FrameKind kind, std::string_view name) : Frame(kind, name, {}) {}
  ~Frame() {
    if (active_) close();
  }
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;

  bool active() const { return active_; }
  // What the frame produced (shown with "->", summarised at GLIMPSE_DEBUG=2).
  void outputs(const Tensor& t) {
    if (active_) output(t);
  }
  void outputs(const std::vector<Tensor>& ts) {
    if (active_)
      for (const Tensor& t : ts) output(t);
  }
  void outputs(const std::pair<Tensor, Tensor>& ts) {
    if (active_) {
      output(ts.first);
      output(ts.second);
    }
  }
  template <class T>
  void outputs(const T&) {}

 private:
  bool open(FrameKind kind, std::string_view name, std::string_view suffix);
  void begin();
  void close();
  void input(const Tensor& t);
  void input(const std::vector<Tensor>& ts) {
    for (const Tensor& t : ts) input(t);
  }
  template <class T>
  void input(const T&) {}
  void output(const Tensor& t);

  bool active_ = false;
};

namespace detail {
// The op macro's re-entry flag (per thread): set just before the traced call of an op, taken by
// that op's GLIMPSE_OP_SCOPE line so that it runs its body instead of tracing itself again.
bool take_reentry();
void set_reentry(bool on);

template <class Fn, class... Args>
decltype(auto) traced(std::string_view name, Fn&& fn, const Args&... args) {
  Frame frame(FrameKind::Op, name, {}, args...);
  struct ClearReentry {
    ~ClearReentry() { set_reentry(false); }
  } clear;
  set_reentry(true);
  if constexpr (std::is_void_v<decltype(fn())>) {
    fn();
  } else {
    auto result = fn();
    frame.outputs(result);
    return result;
  }
}
}  // namespace detail

}  // namespace glimpse::profiler

// The first line of a public op: `GLIMPSE_OP_SCOPE("matmul", matmul, a, b, ta, tb);` with the
// op's name, the function itself and ALL of its parameters, in order. When debug output and
// tracing are off this is one relaxed atomic load. When on, the op calls itself once more inside
// a Frame, which then sees the result (the line lets the inner call through).
#define GLIMPSE_OP_SCOPE(name, fn, ...)                                                          \
  if (::glimpse::profiler::detail::observing() && !::glimpse::profiler::detail::take_reentry()) \
  return ::glimpse::profiler::detail::traced(                                                    \
      name, [&]() -> decltype(auto) { return fn(__VA_ARGS__); } __VA_OPT__(, ) __VA_ARGS__)

// ---- Chrome / Perfetto traces ---------------------------------------------------------------------
namespace glimpse::trace {

struct Options {
  // Record only a window of training steps: skip this many step ends (trace::StepEnd, at the end
  // of each optimizer step) first, then record `steps` steps and write the file after the last
  // one. steps = 0: record from start() until stop().
  int64_t skip_steps = 0;
  int64_t steps = 0;
};

// Starts a trace to be written to `path` (Trace Event JSON: "X" events with ts and dur in
// microseconds, pid, tid, name, and args with the shapes), replacing any trace not yet written.
// Checks at once that `path` can be written (std::runtime_error otherwise). Every op recorded is
// held in memory until the file is written (a few hundred bytes each): trace a step, not a run.
void start(const std::string& path, Options options = {});
// Writes the file (a temporary file renamed over `path`, so a reader never sees half a trace) and
// stops recording; returns the number of events written. When a step window already ended, the
// file was written then and this only returns its count. Throws std::runtime_error when the file
// cannot be written. Does nothing (returns 0) when no trace was started.
size_t stop();
// Whether events are being recorded now.
bool recording();

namespace detail {
extern std::atomic<bool> g_steps_watched;  // a step window is pending or open
void step_end();
}  // namespace detail

// Marks the end of a training step as it goes out of scope (after the frame of the region it
// names, when debug output or tracing is on). nn's optimizers open one in step().
class StepEnd {
 public:
  explicit StepEnd(std::string_view name) : frame_(std::in_place, profiler::FrameKind::Region, name) {}
  ~StepEnd();
  StepEnd(const StepEnd&) = delete;
  StepEnd& operator=(const StepEnd&) = delete;

 private:
  std::optional<profiler::Frame> frame_;
};

}  // namespace glimpse::trace
