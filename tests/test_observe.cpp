// Seeing what the framework does (issue 18): GLIMPSE_DEBUG's op lines (tensor/profiler.h), the
// Chrome / Perfetto trace of a training step, and the Graphviz dot of an autograd graph.
// GCC 12 at -O1 with the sanitizers reports std::regex's own std::function members as "maybe
// uninitialized" (a false positive inside libstdc++); the standard headers are read with that
// warning off, this file's code keeps it.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif

#include "nn/layers.h"
#include "nn/optim.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"
#include "tensor/random.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

// Captures the debug lines at `level` while alive; restores the level and stream afterwards.
struct DebugCapture {
  std::ostringstream out;
  int previous;
  explicit DebugCapture(int level) : previous(profiler::debug_level()) {
    profiler::set_debug_stream(&out);
    profiler::set_debug_level(level);
  }
  ~DebugCapture() {
    profiler::set_debug_level(previous);
    profiler::set_debug_stream(nullptr);
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) result.push_back(line);
    return result;
  }
};

// The lines that contain `needle`.
std::vector<std::string> grep(const std::vector<std::string>& lines, const std::string& needle) {
  std::vector<std::string> found;
  for (const std::string& l : lines)
    if (l.find(needle) != std::string::npos) found.push_back(l);
  return found;
}

// Spaces after "[glimpse] ": twice the nesting depth.
size_t indent(const std::string& line) {
  const std::string prefix = "[glimpse] ";
  REQUIRE(line.rfind(prefix, 0) == 0);
  return line.find_first_not_of(' ', prefix.size()) - prefix.size();
}

Tensor param(const Shape& shape, double scale, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = static_cast<float>(gen.uniform(-scale, scale));
  Tensor t = Tensor::from_vector(v, shape);
  t.set_requires_grad(true);
  return t;
}

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("glimpse_test_observe_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("debug output is off by default and costs no lines") {
  DebugCapture capture(0);
  Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({3, 4});
  matmul(a, b);
  CHECK(capture.out.str().empty());
}

TEST_CASE("GLIMPSE_DEBUG=1 prints each op with shapes, device, time and GFLOP/s for matmul") {
  NoGradGuard no_grad;
  Tensor a = Tensor::ones({8, 16}), b = Tensor::ones({16, 4});
  std::vector<std::string> lines;
  {
    DebugCapture capture(1);
    Tensor c = matmul(a, b);
    Tensor d = tanh(c);
    lines = capture.lines();
  }
  REQUIRE(lines.size() == 2);
  // matmul([8, 16], [16, 4]) -> [8, 4]  cpu  12.3 us  0.05 GFLOP/s (or 0.0034, 3.4e-05 when slow)
  std::smatch m;
  REQUIRE(std::regex_search(lines[0], m,
                            std::regex(R"(^\[glimpse\] matmul\(\[8, 16\], \[16, 4\]\) -> \[8, 4\]  cpu  ([0-9.]+) (us|ms|s)  ([0-9.]+(e-[0-9]+)?) GFLOP/s$)")));
  CHECK(std::stod(m[3]) > 0);
  CHECK(std::regex_search(lines[1], std::regex(R"(^\[glimpse\] tanh\(\[8, 4\]\) -> \[8, 4\]  cpu  [0-9.]+ (us|ms|s)$)")));
}

TEST_CASE("an op built from other ops opens a block and its inner ops are indented") {
  NoGradGuard no_grad;
  Tensor x = Tensor::ones({2, 3, 5});
  std::vector<std::string> lines;
  {
    DebugCapture capture(1);
    softmax(x, 0);  // not the last axis: transpose, softmax of the last axis, transpose back
    lines = capture.lines();
  }
  REQUIRE(lines.size() >= 4);
  CHECK(lines.front() == "[glimpse] softmax([2, 3, 5]) {");
  CHECK(lines.back().rfind("[glimpse] } softmax -> [2, 3, 5]  cpu  ", 0) == 0);
  const auto transposes = grep(lines, "transpose(");
  REQUIRE(transposes.size() == 2);
  for (const std::string& t : transposes) CHECK(indent(t) == 2);
  // transpose is itself permute: one level deeper.
  for (const std::string& p : grep(lines, "permute(")) CHECK(indent(p) == 4);
  CHECK(grep(lines, "permute(").size() == 2);
}

TEST_CASE("a Dense layer is one block with its matmul inside and the matmul's flops") {
  NoGradGuard no_grad;
  Generator gen(3);
  nn::Dense dense("fc", 6, 5, gen);
  Tensor x = Tensor::ones({4, 6});
  std::vector<std::string> lines;
  {
    DebugCapture capture(1);
    dense.forward(x);
    lines = capture.lines();
  }
  REQUIRE(!lines.empty());
  CHECK(lines.front() == "[glimpse] Dense:fc([4, 6]) {");
  const auto inner = grep(lines, "matmul(");
  REQUIRE(inner.size() == 1);
  CHECK(indent(inner[0]) == 2);
  CHECK(inner[0].find("GFLOP/s") != std::string::npos);
  CHECK(lines.back().rfind("[glimpse] } Dense:fc -> [4, 5]", 0) == 0);
  CHECK(lines.back().find("GFLOP/s") != std::string::npos);  // the block counts its matmul
}

TEST_CASE("GLIMPSE_DEBUG=2 adds backward nodes and value summaries, and marks the first NaN") {
  Tensor x = Tensor::from_vector(std::vector<float>{1, -2, 3}, {3});
  x.set_requires_grad(true);
  std::vector<std::string> level1, level2;
  {
    DebugCapture capture(1);
    Tensor loss = sum(tanh(x));
    loss.backward();
    level1 = capture.lines();
  }
  CHECK(grep(level1, ".backward").empty());
  // Level 1 shows the pass as one line, without the ops inside it.
  REQUIRE(grep(level1, "backward(").size() == 1);
  CHECK(grep(level1, "backward(")[0].rfind("[glimpse] backward([]) ", 0) == 0);

  x.zero_grad();
  {
    DebugCapture capture(2);
    Tensor y = log(x);  // log(-2) = NaN
    Tensor loss = sum(mul_scalar(y, 2.0));
    loss.backward();
    level2 = capture.lines();
  }
  const auto log_lines = grep(level2, "] log(");
  REQUIRE(log_lines.size() == 1);
  CHECK(log_lines[0].find("nan 1, inf 0") != std::string::npos);
  CHECK(log_lines[0].find("<-- first NaN/Inf") != std::string::npos);
  // Only the first: mul_scalar's output holds the NaN too, but is not marked.
  CHECK(grep(level2, "<-- first NaN/Inf").size() == 1);
  const auto scaled = grep(level2, "] mul_scalar(");
  REQUIRE(!scaled.empty());
  CHECK(scaled[0].find("nan 1") != std::string::npos);

  // The backward nodes, inside the backward pass, in reverse order of the forward ops.
  std::vector<std::string> nodes;
  for (const std::string& l : level2) {
    std::smatch m;
    if (std::regex_search(l, m, std::regex(R"(\] +(\}? ?)([a-z_]+)\.backward)")))
      if (m[1].str().empty()) nodes.push_back(m[2]);
  }
  CHECK(nodes == std::vector<std::string>{"sum", "mul_scalar", "log"});
  for (const std::string& l : grep(level2, ".backward")) CHECK(indent(l) == 2);
  // mul_scalar's backward calls mul_scalar: shown inside it.
  bool nested = false;
  for (size_t i = 1; i < level2.size(); ++i)
    if (level2[i - 1].find("mul_scalar.backward(") != std::string::npos &&
        level2[i].find("] " + std::string(4, ' ') + "mul_scalar(") != std::string::npos)
      nested = true;
  CHECK(nested);
  // The summary of the pass's result (the gradient of x) has a value per element: 1 / x * 2.
  std::vector<std::string> log_backward;
  for (const std::string& l : grep(level2, "log.backward"))
    if (l.find(" -> ") != std::string::npos) log_backward.push_back(l);
  REQUIRE(log_backward.size() == 1);
  CHECK(log_backward[0].find("{min -1, max 2, mean 0.5556, nan 0, inf 0}") != std::string::npos);
}

TEST_CASE("an op that throws is reported and leaves the nesting as it was") {
  NoGradGuard no_grad;
  std::vector<std::string> lines;
  {
    DebugCapture capture(1);
    CHECK_THROWS(matmul(Tensor::ones({2, 3}), Tensor::ones({4, 5})));
    neg(Tensor::ones({2}));
    lines = capture.lines();
  }
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].rfind("[glimpse] matmul([2, 3], [4, 5]) threw", 0) == 0);
  CHECK(lines[1].rfind("[glimpse] neg([2]) -> [2]", 0) == 0);
}

namespace {

struct TraceEvent {
  std::string name, cat;
  double ts, dur;
  int64_t tid;
  nlohmann::json args;
};

std::vector<TraceEvent> complete_events(const nlohmann::json& trace) {
  std::vector<TraceEvent> events;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    events.push_back({e.at("name"), e.at("cat"), e.at("ts"), e.at("dur"), e.at("tid"), e.at("args")});
  }
  return events;
}

bool inside(const TraceEvent& inner, const TraceEvent& outer) {
  return inner.tid == outer.tid && inner.ts >= outer.ts && inner.ts + inner.dur <= outer.ts + outer.dur;
}

// One training step of a two-layer MLP: forward, loss, backward, Adam.
void mlp_step(nn::Dense& fc1, nn::Dense& fc2, nn::Adam& adam, const Tensor& x, const Tensor& y) {
  adam.zero_grad();
  Tensor hidden = relu(fc1.forward(x));
  Tensor loss = mean(square(sub(fc2.forward(hidden), y)));
  loss.backward();
  adam.step();
}

}  // namespace

TEST_CASE("a trace of a training step: matmuls, backward nodes, nesting and durations") {
  Generator gen(11);
  nn::Dense fc1("fc1", 6, 8, gen), fc2("fc2", 8, 2, gen);
  std::vector<nn::NamedTensor> params = fc1.named_parameters();
  for (auto& p : fc2.named_parameters()) params.push_back(p);
  nn::Adam adam(params, std::make_shared<nn::ConstantLr>(0.01));
  Tensor x = param({5, 6}, 1.0, 1).detach(), y = param({5, 2}, 1.0, 2).detach();

  const fs::path path = scratch("step.json");
  fs::remove(path);
  trace::start(path.string());
  CHECK(trace::recording());
  mlp_step(fc1, fc2, adam, x, y);
  const size_t count = trace::stop();
  CHECK_FALSE(trace::recording());
  REQUIRE(fs::exists(path));
  const nlohmann::json trace = read_json(path);
  const std::vector<TraceEvent> events = complete_events(trace);
  CHECK(events.size() == count);

  std::map<std::string, std::vector<const TraceEvent*>> by_name;
  for (const TraceEvent& e : events) {
    by_name[e.name].push_back(&e);
    CHECK(e.ts >= 0);
    CHECK(e.dur >= 0);
    CHECK(e.tid == events[0].tid);  // one thread ran the ops
  }
  // Forward: two matmuls, each inside its Dense layer's event, with shapes and flops.
  REQUIRE(by_name["matmul"].size() == 2);
  REQUIRE(by_name["Dense:fc1"].size() == 1);
  REQUIRE(by_name["Dense:fc2"].size() == 1);
  const TraceEvent* fc1_event = by_name["Dense:fc1"][0];
  const TraceEvent* mm1 = by_name["matmul"][0];
  CHECK(inside(*mm1, *fc1_event));
  CHECK(mm1->cat == "op");
  CHECK(mm1->args.at("inputs") == nlohmann::json::array({"[5, 6]", "[6, 8]"}));
  CHECK(mm1->args.at("outputs") == nlohmann::json::array({"[5, 8]"}));
  CHECK(mm1->args.at("flops").get<double>() == doctest::Approx(2.0 * 5 * 6 * 8));
  CHECK(mm1->args.at("device") == "cpu");

  // Backward: one pass with the nodes inside it, matmul's twice (two layers), after the forward.
  REQUIRE(by_name["backward"].size() == 1);
  const TraceEvent* pass = by_name["backward"][0];
  CHECK(pass->cat == "region");
  CHECK(pass->ts >= by_name["Dense:fc2"][0]->ts + by_name["Dense:fc2"][0]->dur);
  REQUIRE(by_name["matmul.backward"].size() == 2);
  // (mean is sum then mul_scalar: those are its nodes.)
  for (const char* node : {"matmul.backward", "add.backward", "relu.backward", "square.backward",
                           "sub.backward", "sum.backward", "mul_scalar.backward"}) {
    INFO(node);
    REQUIRE(!by_name[node].empty());
    for (const TraceEvent* e : by_name[node]) {
      CHECK(e->cat == "backward");
      CHECK(inside(*e, *pass));
    }
  }
  // matmul's backward is two GEMMs' worth of flops (the gradients of both operands).
  for (const TraceEvent* e : by_name["matmul.backward"]) CHECK(e->args.at("flops").get<double>() > 0);
  // The optimizer step comes last.
  REQUIRE(by_name["Adam.step"].size() == 1);
  CHECK(by_name["Adam.step"][0]->ts >= pass->ts + pass->dur);

  // Nesting is sane: any two events on a thread are nested or disjoint, never half-overlapping.
  int overlapping = 0;
  for (const TraceEvent& a : events)
    for (const TraceEvent& b : events) {
      if (&a == &b) continue;
      const bool disjoint = a.ts + a.dur <= b.ts || b.ts + b.dur <= a.ts;
      if (!(disjoint || inside(a, b) || inside(b, a))) ++overlapping;
    }
  CHECK(overlapping == 0);
  fs::remove_all(path.parent_path());
}

TEST_CASE("a trace window of training steps is written when its last step ends") {
  Generator gen(5);
  nn::Dense fc1("fc1", 3, 4, gen), fc2("fc2", 4, 1, gen);
  std::vector<nn::NamedTensor> params = fc1.named_parameters();
  for (auto& p : fc2.named_parameters()) params.push_back(p);
  nn::Adam adam(params, std::make_shared<nn::ConstantLr>(0.01));
  Tensor x = param({2, 3}, 1.0, 3).detach(), y = param({2, 1}, 1.0, 4).detach();

  const fs::path path = scratch("window.json");
  fs::remove(path);
  trace::start(path.string(), {.skip_steps = 1, .steps = 1});
  CHECK_FALSE(trace::recording());  // armed: waiting for the end of step 1
  mlp_step(fc1, fc2, adam, x, y);
  CHECK(trace::recording());
  CHECK_FALSE(fs::exists(path));
  mlp_step(fc1, fc2, adam, x, y);
  CHECK_FALSE(trace::recording());
  REQUIRE(fs::exists(path));  // written at the end of step 2, before stop()
  mlp_step(fc1, fc2, adam, x, y);
  const std::vector<TraceEvent> events = complete_events(read_json(path));
  CHECK(trace::stop() == events.size());
  CHECK(trace::stop() == 0);  // nothing started any more
  int steps = 0, passes = 0;
  for (const TraceEvent& e : events) {
    steps += e.name == "Adam.step";
    passes += e.name == "backward";
  }
  CHECK(steps == 1);
  CHECK(passes == 1);
  fs::remove_all(path.parent_path());
}

TEST_CASE("trace::start refuses a path it cannot write") {
  CHECK_THROWS_AS(trace::start("/nonexistent-directory/trace.json"), std::runtime_error);
  CHECK_FALSE(trace::recording());
}

namespace {

// A parsed dot graph: node id -> label, edges as (from, to).
struct Dot {
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> shapes;
  std::set<std::pair<std::string, std::string>> edges;

  explicit Dot(const std::string& text) {
    std::istringstream in(text);
    const std::regex node(R"re(^  (\w+) \[shape=(\w+), label="(.*)"(, style=dashed)?\];$)re");
    const std::regex edge(R"(^  (\w+) -> (\w+);$)");
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_match(line, m, node)) {
        labels[m[1]] = m[3];
        shapes[m[1]] = m[2];
      } else if (std::regex_match(line, m, edge)) {
        edges.insert({m[1], m[2]});
      }
    }
  }
  // The op nodes (ellipses) labelled `op`.
  std::vector<std::string> ops(const std::string& op) const {
    std::vector<std::string> ids;
    for (const auto& [id, label] : labels)
      if (shapes.at(id) == "ellipse" && label == op) ids.push_back(id);
    return ids;
  }
  std::vector<std::string> into(const std::string& id) const {
    std::vector<std::string> from;
    for (const auto& [a, b] : edges)
      if (b == id) from.push_back(a);
    return from;
  }
  std::vector<std::string> out_of(const std::string& id) const {
    std::vector<std::string> to;
    for (const auto& [a, b] : edges)
      if (a == id) to.push_back(b);
    return to;
  }
};

}  // namespace

TEST_CASE("autograd_dot draws loss = sum(tanh(x * w + b)) as tensors and ops") {
  Tensor x = Tensor::from_vector(std::vector<float>{0.5f, -1.0f}, {2});
  Tensor w = param({2}, 1.0, 7);
  Tensor b = param({1}, 1.0, 8);
  Tensor loss = sum(tanh(add(mul(x, w), b)));
  const Dot dot(autograd_dot(loss, {{"x", x}, {"w", w}, {"b", b}, {"loss", loss}}));

  // Four ops, one of each; five tensors in, three intermediate, one out: 4 + 3 + 1 + 3 tensors...
  const auto mul_op = dot.ops("mul"), add_op = dot.ops("add"), tanh_op = dot.ops("tanh"),
             sum_op = dot.ops("sum");
  REQUIRE(mul_op.size() == 1);
  REQUIRE(add_op.size() == 1);
  REQUIRE(tanh_op.size() == 1);
  REQUIRE(sum_op.size() == 1);
  size_t ellipses = 0, records = 0;
  for (const auto& [id, shape] : dot.shapes) (shape == "ellipse" ? ellipses : records) += 1;
  CHECK(ellipses == 4);
  // x, w, b (leaves), x*w, x*w+b, tanh(...) and loss.
  CHECK(records == 7);
  // Each op has exactly one output tensor.
  for (const auto& op : {mul_op[0], add_op[0], tanh_op[0], sum_op[0]}) REQUIRE(dot.out_of(op).size() == 1);

  auto label_of = [&](const std::string& id) { return dot.labels.at(id); };
  auto inputs_of = [&](const std::string& op) {
    std::multiset<std::string> labels;
    for (const std::string& id : dot.into(op)) labels.insert(label_of(id));
    return labels;
  };
  // mul reads x (a constant: no gradient) and w (a parameter), both [2].
  const std::multiset<std::string> mul_inputs = inputs_of(mul_op[0]);
  REQUIRE(mul_inputs.size() == 2);
  CHECK(label_of(dot.into(mul_op[0])[0]).find("[2]") != std::string::npos);
  bool saw_x = false, saw_w = false;
  for (const std::string& id : dot.into(mul_op[0])) {
    const std::string l = label_of(id);
    if (l.rfind("{x | [2] | constant", 0) == 0) saw_x = true;
    if (l.rfind("{w | [2] | requires_grad", 0) == 0) saw_w = true;
  }
  CHECK(saw_x);
  CHECK(saw_w);
  // The chain: mul -> t -> add (with b) -> t -> tanh -> t -> sum -> loss.
  const std::string product = dot.out_of(mul_op[0])[0];
  CHECK(dot.edges.count({product, add_op[0]}) == 1);
  const std::vector<std::string> add_in = dot.into(add_op[0]);
  REQUIRE(add_in.size() == 2);
  bool saw_b = false;
  for (const std::string& id : add_in)
    if (label_of(id).rfind("{b | [1] | requires_grad", 0) == 0) saw_b = true;
  CHECK(saw_b);
  const std::string pre = dot.out_of(add_op[0])[0];
  CHECK(label_of(pre).rfind("{[2]", 0) == 0);
  CHECK(dot.into(tanh_op[0]) == std::vector<std::string>{pre});
  const std::string activation = dot.out_of(tanh_op[0])[0];
  CHECK(dot.into(sum_op[0]) == std::vector<std::string>{activation});
  const std::string out = dot.out_of(sum_op[0])[0];
  CHECK(label_of(out).rfind("{loss | []", 0) == 0);  // the scalar root, named
  // Its value is in the label: sum(tanh(x w + b)).
  const std::vector<float> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  const double expected = std::tanh(xv[0] * wv[0] + bv[0]) + std::tanh(xv[1] * wv[1] + bv[0]);
  std::smatch m;
  const std::string root_label = label_of(out);
  REQUIRE(std::regex_search(root_label, m, std::regex(R"(data ([-0-9.e]+))")));
  CHECK(std::stod(m[1]) == doctest::Approx(expected).epsilon(1e-3));
  CHECK(dot.out_of(out).empty());
  CHECK(dot.edges.size() == 4 /* outputs */ + 2 + 2 + 1 + 1 /* inputs */);

  // backward() frees the graph: the root's node is then drawn as freed, without inputs.
  loss.backward();
  const Dot after(autograd_dot(loss));
  CHECK(after.ops("sum (freed)").size() == 1);
  CHECK(after.edges.size() == 1);
}
