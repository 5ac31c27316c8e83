// The op table, debug output and traces (see profiler.h).
#include "tensor/profiler.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace glimpse::profiler {

namespace detail {
std::atomic<unsigned> g_on{0};
}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;
using detail::g_on;
using detail::kDebug;
using detail::kTable;
using detail::kTrace;

void set_bit(unsigned bit, bool on) {
  if (on) {
    g_on.fetch_or(bit, std::memory_order_relaxed);
  } else {
    g_on.fetch_and(~bit, std::memory_order_relaxed);
  }
}

// ---- the table ----
std::mutex g_mutex;
std::map<std::pair<std::string, std::string>, Entry>& table() {
  static std::map<std::pair<std::string, std::string>, Entry> entries;
  return entries;
}

// ---- debug output ----
std::atomic<int> g_level{0};
std::atomic<bool> g_seen_nonfinite{false};
std::mutex g_print_mutex;
std::ostream* g_stream = nullptr;  // null: std::cerr (guarded by g_print_mutex)

// GLIMPSE_DEBUG, read once: unset, empty or 0 is off; 1 and 2 are the levels (more is 2).
int level_from_environment() {
  const char* value = std::getenv("GLIMPSE_DEBUG");
  if (!value || !*value) return 0;
  char* end = nullptr;
  const long level = std::strtol(value, &end, 10);
  if (*end != '\0' || level < 0) {
    std::cerr << "glimpse: GLIMPSE_DEBUG=" << value << " is not 0, 1 or 2; using 1\n";
    return 1;
  }
  return static_cast<int>(std::min(level, 2L));
}
const bool g_environment_read = [] {
  set_debug_level(level_from_environment());
  return true;
}();

// ---- frames ----
struct FrameData {
  FrameKind kind = FrameKind::Op;
  std::string name;
  std::vector<std::string> inputs, outputs;  // shapes as text
  std::vector<Tensor> output_tensors;         // for the value summaries (GLIMPSE_DEBUG=2)
  bool has_device = false;
  Device device = Device::CPU;
  bool cuda = false;  // touched a CUDA tensor: synchronise around it
  double flops = 0;
  Clock::time_point start;
  bool print = false, header_printed = false;
  int depth = 0;  // indentation: how many printed frames enclose it
  int uncaught = 0;
};

thread_local std::vector<FrameData> tl_stack;
thread_local bool tl_suspended = false;  // inside the profiler's own work (value summaries)
thread_local bool tl_reentry = false;

std::string tensor_text(const Tensor& t) {
  if (!t.defined()) return "-";
  std::string text = shape_str(t.shape());
  if (t.dtype() != DType::F32) text += std::string(" ") + dtype_name(t.dtype());
  return text;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += ", ";
    out += parts[i];
  }
  return out;
}

std::string format_seconds(double s) {
  char buffer[64];
  if (s < 1e-3) {
    std::snprintf(buffer, sizeof buffer, "%.1f us", s * 1e6);
  } else if (s < 1) {
    std::snprintf(buffer, sizeof buffer, "%.3f ms", s * 1e3);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.3f s", s);
  }
  return buffer;
}

// "min -0.96, max 0.96, mean 0.012, nan 0, inf 0" over the finite values; counts NaN + Inf.
std::string value_summary(const Tensor& t, int64_t& nonfinite) {
  nonfinite = 0;
  if (!t.defined()) return "-";
  if (t.numel() == 0) return "empty";
  const std::vector<double> v = t.to_vector_f64();
  int64_t nan = 0, inf = 0, finite = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, total = 0;
  for (double x : v) {
    if (std::isnan(x)) {
      ++nan;
    } else if (std::isinf(x)) {
      ++inf;
    } else {
      ++finite;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      total += x;
    }
  }
  nonfinite = nan + inf;
  char buffer[160];
  if (finite == 0) {
    std::snprintf(buffer, sizeof buffer, "no finite values, nan %lld, inf %lld",
                  static_cast<long long>(nan), static_cast<long long>(inf));
  } else {
    std::snprintf(buffer, sizeof buffer, "min %.4g, max %.4g, mean %.4g, nan %lld, inf %lld", lo,
                  hi, total / static_cast<double>(finite), static_cast<long long>(nan),
                  static_cast<long long>(inf));
  }
  return buffer;
}

void print_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_print_mutex);
  std::ostream& out = g_stream ? *g_stream : std::cerr;
  out << line << '\n';
  out.flush();
}

std::string line_start(int depth) { return "[glimpse] " + std::string(2 * depth, ' '); }

// "matmul([2, 3], [3, 4])"; a region without inputs ("Adam.step") is its name alone.
std::string call_text(const FrameData& f) {
  if (f.inputs.empty() && f.kind == FrameKind::Region) return f.name;
  return f.name + "(" + join(f.inputs) + ")";
}

void print_header(FrameData& f) {
  print_line(line_start(f.depth) + call_text(f) + " {");
  f.header_printed = true;
}

void synchronize_cuda() { device_api(Device::CUDA).synchronize(); }

struct Event {
  std::string name;
  FrameKind kind;
  double ts = 0, dur = 0;  // microseconds since the trace began
  int tid = 0;
  std::vector<std::string> inputs, outputs;
  double flops = 0;
  std::string device;
};
void record_event(Event event, Clock::time_point start, Clock::time_point end);

int thread_number() {
  static std::atomic<int> next{1};
  thread_local int number = next.fetch_add(1);
  return number;
}

}  // namespace

// ---- the table ----

void set_enabled(bool on) { set_bit(kTable, on); }
bool enabled() { return (detail::on() & kTable) != 0; }

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
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
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

// ---- debug output ----

int debug_level() { return g_level.load(std::memory_order_relaxed); }

void set_debug_level(int level) {
  level = std::clamp(level, 0, 2);
  g_level.store(level, std::memory_order_relaxed);
  g_seen_nonfinite.store(false, std::memory_order_relaxed);
  set_bit(kDebug, level > 0);
}

void set_debug_stream(std::ostream* out) {
  std::lock_guard<std::mutex> lock(g_print_mutex);
  g_stream = out;
}

namespace detail {

void add_flops_slow(double flops) {
  if (!tl_stack.empty()) tl_stack.back().flops += flops;
}

bool take_reentry() {
  const bool was = tl_reentry;
  tl_reentry = false;
  return was;
}

void set_reentry(bool on) { tl_reentry = on; }

}  // namespace detail

// ---- frames ----

bool Frame::open(FrameKind kind, std::string_view name, std::string_view suffix) {
  if (tl_suspended) return false;
  const unsigned on = detail::on();
  const int level = debug_level();
  FrameData f;
  f.kind = kind;
  f.name.reserve(name.size() + suffix.size());
  f.name.append(name).append(suffix);
  const bool parent_prints = tl_stack.empty() || tl_stack.back().print;
  f.print = (on & kDebug) && level >= 1 && parent_prints && (kind != FrameKind::Backward || level >= 2);
  for (const FrameData& g : tl_stack) f.depth += g.print ? 1 : 0;
  f.uncaught = std::uncaught_exceptions();
  tl_stack.push_back(std::move(f));
  active_ = true;
  return true;
}

void Frame::input(const Tensor& t) {
  if (!t.defined()) return;
  FrameData& f = tl_stack.back();
  f.inputs.push_back(tensor_text(t));
  if (!f.has_device) {
    f.has_device = true;
    f.device = t.device();
  }
  if (t.device() == Device::CUDA) f.cuda = true;
}

void Frame::output(const Tensor& t) {
  FrameData& f = tl_stack.back();
  f.outputs.push_back(tensor_text(t));
  if (!t.defined()) return;
  if (!f.has_device) {
    f.has_device = true;
    f.device = t.device();
  }
  if (t.device() == Device::CUDA) f.cuda = true;
  if (f.print && debug_level() >= 2) f.output_tensors.push_back(t);
}

void Frame::begin() {
  FrameData& f = tl_stack.back();
  if (f.print)
    for (size_t i = 0; i + 1 < tl_stack.size(); ++i)
      if (tl_stack[i].print && !tl_stack[i].header_printed) print_header(tl_stack[i]);
  if (f.cuda) synchronize_cuda();  // earlier asynchronous work is not this op's
  f.start = Clock::now();
}

void Frame::close() {
  active_ = false;
  FrameData f = std::move(tl_stack.back());
  tl_stack.pop_back();
  if (f.cuda) synchronize_cuda();
  const Clock::time_point end = Clock::now();
  if (!tl_stack.empty()) tl_stack.back().flops += f.flops;
  const double seconds = std::chrono::duration<double>(end - f.start).count();
  const bool threw = std::uncaught_exceptions() > f.uncaught;

  if (f.print) {
    std::string line = line_start(f.depth);
    if (f.header_printed) {
      line += "} " + f.name;
    } else {
      line += call_text(f);
    }
    if (threw) {
      line += " threw";
    } else if (!f.outputs.empty()) {
      line += " -> " + (f.outputs.size() == 1 ? f.outputs[0] : "(" + join(f.outputs) + ")");
    }
    if (f.has_device) line += std::string("  ") + device_name(f.device);
    line += "  " + format_seconds(seconds);
    if (f.flops > 0 && seconds > 0) {
      char buffer[64];
      // Two decimals, but never "0.00" for a tiny op that ran slowly (a 1 KFLOP matmul taking
      // 0.3 ms under a sanitizer): below 0.01, two significant digits.
      const double gflops = f.flops / seconds * 1e-9;
      std::snprintf(buffer, sizeof buffer, gflops >= 0.01 ? "  %.2f GFLOP/s" : "  %.2g GFLOP/s",
                    gflops);
      line += buffer;
    }
    if (!f.output_tensors.empty()) {
      // The summaries copy values to the host with ops of their own, which are not shown.
      tl_suspended = true;
      int64_t nonfinite_total = 0;
      std::string summaries;
      try {
        for (const Tensor& t : f.output_tensors) {
          int64_t nonfinite = 0;
          summaries += (summaries.empty() ? "" : "; ") + value_summary(t, nonfinite);
          nonfinite_total += nonfinite;
        }
      } catch (const std::exception& e) {
        summaries += std::string(" (summary failed: ") + e.what() + ")";
      }
      tl_suspended = false;
      line += "  {" + summaries + "}";
      if (nonfinite_total > 0 && !g_seen_nonfinite.exchange(true)) line += "  <-- first NaN/Inf";
    }
    print_line(line);
  }

  if (detail::on() & kTrace) {
    Event e;
    e.name = std::move(f.name);
    e.kind = f.kind;
    e.tid = thread_number();
    e.inputs = std::move(f.inputs);
    e.outputs = std::move(f.outputs);
    e.flops = f.flops;
    e.device = f.has_device ? device_name(f.device) : "";
    record_event(std::move(e), f.start, end);
  }
}

// ---- traces ----

namespace {

enum class Phase { Idle, Armed, Recording, Done };

struct TraceState {
  std::mutex mutex;
  Phase phase = Phase::Idle;
  std::string path;
  trace::Options options;
  int64_t step_ends = 0;  // seen since start()
  Clock::time_point begin;
  std::vector<Event> events;
  size_t written = 0;  // by a step window that ended
  std::string error;   // its write failed
};
TraceState& trace_state() {
  static TraceState state;
  return state;
}

void record_event(Event event, Clock::time_point start, Clock::time_point end) {
  TraceState& s = trace_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.phase != Phase::Recording || start < s.begin) return;
  event.ts = std::chrono::duration<double, std::micro>(start - s.begin).count();
  event.dur = std::chrono::duration<double, std::micro>(end - start).count();
  s.events.push_back(std::move(event));
}

void json_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

const char* category(FrameKind kind) {
  switch (kind) {
    case FrameKind::Op: return "op";
    case FrameKind::Backward: return "backward";
    case FrameKind::Region: return "region";
  }
  return "op";
}

std::string trace_json(std::vector<Event>& events) {
  // Parents before their children (same start: the longer first), as chrome://tracing likes.
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.ts != b.ts ? a.ts < b.ts : a.dur > b.dur;
  });
  const long pid = static_cast<long>(::getpid());
  std::string out = "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  out += "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": " + std::to_string(pid) +
         ", \"tid\": 0, \"args\": {\"name\": \"glimpse\"}}";
  std::vector<int> tids;
  for (const Event& e : events)
    if (std::find(tids.begin(), tids.end(), e.tid) == tids.end()) tids.push_back(e.tid);
  for (int tid : tids)
    out += ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": " + std::to_string(pid) +
           ", \"tid\": " + std::to_string(tid) + ", \"args\": {\"name\": \"glimpse thread " +
           std::to_string(tid) + "\"}}";
  char number[64];
  for (const Event& e : events) {
    out += ",\n{\"name\": ";
    json_string(out, e.name);
    out += ", \"cat\": \"";
    out += category(e.kind);
    std::snprintf(number, sizeof number, "\", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f", e.ts,
                  e.dur);
    out += number;
    out += ", \"pid\": " + std::to_string(pid) + ", \"tid\": " + std::to_string(e.tid);
    out += ", \"args\": {\"inputs\": [";
    for (size_t i = 0; i < e.inputs.size(); ++i) {
      if (i) out += ", ";
      json_string(out, e.inputs[i]);
    }
    out += "], \"outputs\": [";
    for (size_t i = 0; i < e.outputs.size(); ++i) {
      if (i) out += ", ";
      json_string(out, e.outputs[i]);
    }
    out += "]";
    if (!e.device.empty()) {
      out += ", \"device\": ";
      json_string(out, e.device);
    }
    if (e.flops > 0) {
      std::snprintf(number, sizeof number, ", \"flops\": %.0f", e.flops);
      out += number;
      if (e.dur > 0) {
        std::snprintf(number, sizeof number, ", \"GFLOP/s\": %.3f", e.flops / e.dur * 1e-3);
        out += number;
      }
    }
    out += "}}";
  }
  out += "\n]}\n";
  return out;
}

// Writes `text` to a temporary sibling of `path`, then renames it over `path`. (tensor/ is below
// io/, so this does not use io/atomic_file.h; the protocol is the same, without the fsyncs.)
void write_atomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (!file)
    throw std::runtime_error("trace: cannot write " + temporary + ": " + std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const int saved_errno = errno;
  if (std::fclose(file) != 0 || !written) {
    const int e = written ? errno : saved_errno;
    std::remove(temporary.c_str());
    throw std::runtime_error("trace: cannot write " + temporary + ": " + std::strerror(e));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(temporary.c_str());
    throw std::runtime_error("trace: cannot rename " + temporary + " to " + path + ": " +
                             std::strerror(e));
  }
}

// Stops recording and writes the file (the caller holds the state's mutex).
size_t finish_locked(TraceState& s) {
  set_bit(kTrace, false);
  trace::detail::g_steps_watched.store(false, std::memory_order_relaxed);
  const size_t count = s.events.size();
  std::vector<Event> events = std::move(s.events);
  s.events.clear();
  s.phase = Phase::Idle;
  write_atomically(s.path, trace_json(events));
  return count;
}

void begin_recording_locked(TraceState& s) {
  s.phase = Phase::Recording;
  s.begin = Clock::now();
  set_bit(kTrace, true);
}

}  // namespace

}  // namespace glimpse::profiler

namespace glimpse::trace {

using profiler::Phase;
using profiler::TraceState;

namespace detail {
std::atomic<bool> g_steps_watched{false};

void step_end() {
  TraceState& s = profiler::trace_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.phase != Phase::Armed && s.phase != Phase::Recording) return;
  ++s.step_ends;
  if (s.phase == Phase::Armed) {
    if (s.step_ends == s.options.skip_steps) profiler::begin_recording_locked(s);
    return;
  }
  if (s.options.steps > 0 && s.step_ends == s.options.skip_steps + s.options.steps) {
    try {
      s.written = profiler::finish_locked(s);
    } catch (const std::exception& e) {
      s.error = e.what();
      std::cerr << "glimpse: " << e.what() << "\n";
    }
    s.phase = Phase::Done;
  }
}
}  // namespace detail

void start(const std::string& path, Options options) {
  if (options.skip_steps < 0 || options.steps < 0)
    throw std::invalid_argument("trace::start: skip_steps and steps must be >= 0");
  // Can the file be written? Better to know now than after the run.
  const std::string probe = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  std::FILE* file = std::fopen(probe.c_str(), "wb");
  if (!file)
    throw std::runtime_error("trace: cannot write next to " + path + ": " + std::strerror(errno));
  std::fclose(file);
  std::remove(probe.c_str());

  TraceState& s = profiler::trace_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  profiler::set_bit(profiler::detail::kTrace, false);
  s.events.clear();
  s.step_ends = 0;
  s.written = 0;
  s.error.clear();
  s.path = path;
  s.options = options;
  detail::g_steps_watched.store(options.skip_steps > 0 || options.steps > 0,
                                std::memory_order_relaxed);
  if (options.skip_steps == 0) {
    profiler::begin_recording_locked(s);
  } else {
    s.phase = Phase::Armed;
  }
}

size_t stop() {
  TraceState& s = profiler::trace_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  switch (s.phase) {
    case Phase::Idle: return 0;
    case Phase::Done: {
      s.phase = Phase::Idle;
      if (!s.error.empty()) throw std::runtime_error(s.error);
      return s.written;
    }
    case Phase::Armed:
    case Phase::Recording: return profiler::finish_locked(s);
  }
  return 0;
}

bool recording() { return (profiler::detail::on() & profiler::detail::kTrace) != 0; }

StepEnd::~StepEnd() {
  frame_.reset();
  if (detail::g_steps_watched.load(std::memory_order_relaxed)) detail::step_end();
}

}  // namespace glimpse::trace
