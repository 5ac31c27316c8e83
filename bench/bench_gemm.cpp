// bench_gemm: float32 throughput of the framework's matmul and conv2d ops against raw Eigen GEMM
// on the same shapes, at 1 and 2 threads (issue "foundation").
//
// The gap between glimpse::matmul and Eigen is the ops layer's overhead (shape checks, output
// allocation, dispatch); the gap between glimpse::conv2d and an Eigen GEMM of the same M, N, K is
// im2col plus that overhead. The conv target is >= 60% of the GEMM.
//
// The Eigen reference runs on one thread at every thread count: glimpse builds Eigen with
// EIGEN_DONT_PARALLELIZE (its threads come from tensor/parallel.h alone), so at 2 threads the
// ratio also shows how well glimpse uses the second core.
//
//   bench_gemm [--threads 1,2] [--repeats 5] [--min-seconds 0.5] [--conv-batch 1] [--long]
//
// --long adds 2048^3 and a strided conv. Each cell is the median of the timed repeats, after one
// untimed warmup call; a cell keeps repeating (up to 4x --repeats) until --min-seconds of timed
// work has accumulated, so fast shapes are not dominated by timer noise. GFLOP/s are given from
// wall time and from process CPU time (every thread, spin-waits included): on a loaded machine
// the CPU-time figures at 1 thread still say what the code costs.
#include <time.h>

#include "tensor/cpu/eigen.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace {

using glimpse::Tensor;
using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMajorMatrix>;
using MutableMap = Eigen::Map<RowMajorMatrix>;

struct Options {
  std::vector<int> threads{1, 2};
  int repeats = 5;
  double min_seconds = 0.5;
  int conv_batch = 1;
  bool long_run = false;
};

std::vector<int> parse_int_list(const std::string& text, const char* flag) {
  std::vector<int> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      values.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw std::invalid_argument(std::string("bench_gemm: ") + flag +
                                  " expects integers like 1,2, got '" + text + "'");
    }
    if (values.back() <= 0)
      throw std::invalid_argument(std::string("bench_gemm: ") + flag + " values must be positive");
  }
  return values;
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("bench_gemm: " + arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--threads") options.threads = parse_int_list(value(), "--threads");
    else if (arg == "--repeats") options.repeats = std::stoi(value());
    else if (arg == "--min-seconds") options.min_seconds = std::stod(value());
    else if (arg == "--conv-batch") options.conv_batch = std::stoi(value());
    else if (arg == "--long") options.long_run = true;
    else if (arg == "--help" || arg == "-h") {
      std::printf(
          "bench_gemm [--threads 1,2] [--repeats 5] [--min-seconds 0.5] [--conv-batch 1] "
          "[--long]\n");
      std::exit(0);
    } else {
      throw std::invalid_argument("bench_gemm: unknown flag '" + arg + "' (see --help)");
    }
  }
  if (options.repeats < 1 || options.conv_batch < 1)
    throw std::invalid_argument("bench_gemm: --repeats and --conv-batch must be >= 1");
  return options;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU time of every thread of this process so far (spin-waits included), in seconds.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

struct Timing {
  double wall_seconds, cpu_seconds;  // medians per call
};

Timing median_timing(const std::function<void()>& work, const Options& options) {
  work();  // warmup: first-touch of buffers, Eigen's blocking workspace, allocator caches
  std::vector<double> wall, cpu;
  double total = 0;
  while (static_cast<int>(wall.size()) < options.repeats ||
         (total < options.min_seconds && static_cast<int>(wall.size()) < 4 * options.repeats)) {
    const double cpu_start = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    work();
    wall.push_back(seconds_since(start));
    cpu.push_back(process_cpu_seconds() - cpu_start);
    total += wall.back();
  }
  return {median(wall), median(cpu)};
}

Tensor random_matrix(int64_t rows, int64_t cols, glimpse::Generator& gen) {
  return glimpse::random_uniform({rows, cols}, -1.0, 1.0, gen);
}

// The largest |a - b| relative to the largest |b|: a sanity check that both sides computed the
// same product, so a fast wrong answer cannot pass as a result.
double relative_difference(const float* a, const float* b, int64_t n) {
  double worst = 0, scale = 1e-30;
  for (int64_t i = 0; i < n; ++i) {
    worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return worst / scale;
}

struct MatmulCase {
  const char* label;
  int64_t M, N, K;
  bool trans_a, trans_b;
};

// C[M, N] = op(A) op(B) with raw Eigen maps over the same buffers the framework reads.
void eigen_product(const MatmulCase& c, const float* a, const float* b, float* out) {
  ConstMap a_map(a, c.trans_a ? c.K : c.M, c.trans_a ? c.M : c.K);
  ConstMap b_map(b, c.trans_b ? c.N : c.K, c.trans_b ? c.K : c.N);
  MutableMap out_map(out, c.M, c.N);
  if (!c.trans_a && !c.trans_b) out_map.noalias() = a_map * b_map;
  else if (!c.trans_a && c.trans_b) out_map.noalias() = a_map * b_map.transpose();
  else if (c.trans_a && !c.trans_b) out_map.noalias() = a_map.transpose() * b_map;
  else out_map.noalias() = a_map.transpose() * b_map.transpose();
}

void print_rule() { std::printf("%s\n", std::string(133, '-').c_str()); }

void print_header(const char* first, const char* second, const char* ours, const char* theirs) {
  print_rule();
  std::printf("%-28s %-27s %3s | %10s %10s %6s | %10s %10s %6s\n", "", "", "", "wall", "", "",
              "CPU time", "", "");
  std::printf("%-28s %-27s %3s | %10s %10s %6s | %10s %10s %6s\n", first, second, "thr", ours,
              theirs, "ratio", ours, theirs, "ratio");
  print_rule();
}

// One row: GFLOP/s from wall and from process CPU time, and ours as a % of the reference.
void print_row(const char* first, const char* second, int threads, double flops, const Timing& ours,
               const Timing& reference, const char* note) {
  std::printf("%-28s %-27s %3d | %10.1f %10.1f %5.0f%% | %10.1f %10.1f %5.0f%%%s\n", first, second,
              threads, flops / ours.wall_seconds * 1e-9, flops / reference.wall_seconds * 1e-9,
              100.0 * reference.wall_seconds / ours.wall_seconds, flops / ours.cpu_seconds * 1e-9,
              flops / reference.cpu_seconds * 1e-9,
              100.0 * reference.cpu_seconds / ours.cpu_seconds, note);
}

void bench_matmuls(const std::vector<MatmulCase>& cases, const Options& options) {
  glimpse::Generator gen(1);
  std::printf(
      "\nmatmul: glimpse::matmul (op: checks + output allocation + GEMM) vs raw Eigen GEMM, "
      "GFLOP/s\n");
  print_header("shape", "case", "glimpse", "Eigen");
  for (const MatmulCase& c : cases) {
    Tensor a = c.trans_a ? random_matrix(c.K, c.M, gen) : random_matrix(c.M, c.K, gen);
    Tensor b = c.trans_b ? random_matrix(c.N, c.K, gen) : random_matrix(c.K, c.N, gen);
    std::vector<float> eigen_out(static_cast<size_t>(c.M * c.N));
    const double flops = 2.0 * c.M * c.N * c.K;

    // One check per case that the op and Eigen agree.
    Tensor check = glimpse::matmul(a, b, c.trans_a, c.trans_b);
    eigen_product(c, a.data<float>(), b.data<float>(), eigen_out.data());
    const double diff = relative_difference(check.data<float>(), eigen_out.data(), c.M * c.N);

    char shape[64];
    std::snprintf(shape, sizeof shape, "[%lld,%lld]x[%lld,%lld]%s%s", static_cast<long long>(c.M),
                  static_cast<long long>(c.K), static_cast<long long>(c.K),
                  static_cast<long long>(c.N), c.trans_a ? " tA" : "", c.trans_b ? " tB" : "");
    for (int threads : options.threads) {
      glimpse::parallel::set_num_threads(threads);
      const Timing op =
          median_timing([&] { Tensor y = glimpse::matmul(a, b, c.trans_a, c.trans_b); }, options);
      const Timing eigen = median_timing(
          [&] { eigen_product(c, a.data<float>(), b.data<float>(), eigen_out.data()); }, options);
      print_row(shape, c.label, threads, flops, op, eigen, diff > 1e-4 ? "  MISMATCH" : "");
    }
  }
  print_rule();
}

struct ConvCase {
  const char* label;
  int64_t H, W, C, COUT;
  int KH, KW, stride;
  glimpse::Padding padding;
};

void bench_convs(const std::vector<ConvCase>& cases, const Options& options) {
  glimpse::Generator gen(2);
  const int64_t N = options.conv_batch;
  std::printf(
      "\nconv2d (NHWC, batch %lld): glimpse::conv2d (im2col + GEMM) vs Eigen GEMM of the same "
      "M=N*OH*OW, N=COUT, K=KH*KW*C\n",
      static_cast<long long>(N));
  print_header("input -> output", "kernel", "conv", "GEMM");
  for (const ConvCase& c : cases) {
    Tensor x = glimpse::random_uniform({N, c.H, c.W, c.C}, -1.0, 1.0, gen);
    Tensor kernel = glimpse::random_uniform({c.KH, c.KW, c.C, c.COUT}, -0.1, 0.1, gen);
    const glimpse::PaddingPlan ph = glimpse::plan_padding(c.H, c.KH, c.stride, c.padding);
    const glimpse::PaddingPlan pw = glimpse::plan_padding(c.W, c.KW, c.stride, c.padding);
    const int64_t M = N * ph.out * pw.out, K = c.KH * c.KW * c.C;
    const double flops = 2.0 * M * c.COUT * K;
    // The GEMM side multiplies matrices of the conv's GEMM shape; their values do not matter.
    Tensor lhs = random_matrix(M, K, gen);
    std::vector<float> gemm_out(static_cast<size_t>(M * c.COUT));
    const MatmulCase gemm_shape{"", M, c.COUT, K, false, false};

    char shape[64], kernel_text[48];
    std::snprintf(shape, sizeof shape, "%lldx%lldx%lld -> %lldx%lldx%lld",
                  static_cast<long long>(c.H), static_cast<long long>(c.W),
                  static_cast<long long>(c.C), static_cast<long long>(ph.out),
                  static_cast<long long>(pw.out), static_cast<long long>(c.COUT));
    std::snprintf(kernel_text, sizeof kernel_text, "%dx%d/%d %s (%s)", c.KH, c.KW, c.stride,
                  glimpse::padding_name(c.padding), c.label);
    for (int threads : options.threads) {
      glimpse::parallel::set_num_threads(threads);
      const Timing conv = median_timing(
          [&] { Tensor y = glimpse::conv2d(x, kernel, c.stride, c.stride, c.padding); }, options);
      const Timing gemm = median_timing(
          [&] {
            eigen_product(gemm_shape, lhs.data<float>(), kernel.data<float>(), gemm_out.data());
          },
          options);
      const bool below_target =
          gemm.wall_seconds / conv.wall_seconds < 0.6 && gemm.cpu_seconds / conv.cpu_seconds < 0.6;
      print_row(shape, kernel_text, threads, flops, conv, gemm,
                below_target ? "  < 60% target" : "");
    }
  }
  print_rule();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse_options(argc, argv);
    glimpse::NoGradGuard no_grad;
    std::printf("bench_gemm: float32, median of >= %d repeats after 1 warmup, threads:",
                options.repeats);
    for (int t : options.threads) std::printf(" %d", t);
    std::printf(" (pool threads at start: %d)\n", glimpse::parallel::num_threads());

    // The decoder's shapes: B=32 captions of T=64 tokens, 512 units, GRU gates 3*512, vocab 20000.
    std::vector<MatmulCase> matmuls = {
        {"square", 1024, 1024, 1024, false, false},
        {"GRU input proj", 2048, 1536, 512, false, false},
        {"GRU input proj dX", 2048, 512, 1536, false, true},
        {"GRU input proj dW", 512, 1536, 2048, true, false},
        {"GRU recurrent step", 32, 1536, 512, false, false},
        {"GRU recurrent dh", 32, 512, 1536, false, true},
        {"GRU recurrent dR", 512, 1536, 32, true, false},
        {"output Dense", 2048, 20000, 512, false, false},
        {"output Dense dX", 2048, 512, 20000, false, true},
        {"output Dense dW", 512, 20000, 2048, true, false},
    };
    if (options.long_run)
      matmuls.insert(matmuls.begin() + 1, {"square", 2048, 2048, 2048, false, false});
    bench_matmuls(matmuls, options);

    using glimpse::Padding;
    // Inception-ResNet-v2's stem and block shapes at 299x299.
    std::vector<ConvCase> convs = {
        {"stem conv 2", 149, 149, 32, 32, 3, 3, 1, Padding::Valid},
        {"stem conv 3", 147, 147, 32, 64, 3, 3, 1, Padding::Same},
        {"stem conv 5", 73, 73, 64, 80, 1, 1, 1, Padding::Valid},
        {"block35 branch", 35, 35, 320, 32, 1, 1, 1, Padding::Same},
        {"block35 branch", 35, 35, 32, 48, 3, 3, 1, Padding::Same},
        {"block35 up", 35, 35, 128, 320, 1, 1, 1, Padding::Same},
        {"block17 branch", 17, 17, 1088, 192, 1, 1, 1, Padding::Same},
        {"block17 1x7", 17, 17, 128, 160, 1, 7, 1, Padding::Same},
        {"block8 branch", 8, 8, 2080, 192, 1, 1, 1, Padding::Same},
    };
    if (options.long_run) convs.push_back({"mixed_6a", 35, 35, 320, 384, 3, 3, 2, Padding::Valid});
    bench_convs(convs, options);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
