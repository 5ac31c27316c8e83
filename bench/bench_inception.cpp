// bench_inception: Inception-ResNet-v2 forward (include_top=False, 299x299, inference mode, no
// gradients) on the CPU, per image at several batch sizes, as a fraction of this machine's GEMM
// peak measured in the same program (issue "captioner"). bench/inception_torch.py and
// bench/inception_onnx.py run the same network in PyTorch and ONNX Runtime.
//
//   bench_inception [--threads N] [--batches 1,8] [--repeats 3] [--image-size 299] [--peak-2048]
//                   [--no-fold] [--profile]
//
// The encoder is frozen and its BatchNorms folded into the convolutions
// (InceptionResNetV2::fold_batch_norm, as ONNX Runtime's graph optimiser does); --no-fold runs
// conv, BatchNorm and ReLU as separate passes. --profile then runs the forwards once more with the
// op profiler on (tensor/profiler.h) and prints, per batch, where the time went: each distinct
// convolution, pooling and concat shape, its time per forward and GFLOP/s
// (`python3 bench/inception_onnx.py --profile` prints ONNX Runtime's per-node times likewise).
// Layout NHWC (glimpse's only layout). Random weights: speed does not depend on them. The GEMM
// peak is the build's float32 GEMM (OpenBLAS when the build found it, otherwise Eigen; the one
// glimpse's matmul uses) on a 1024^3 (2048^3 with --peak-2048) product at the same thread count,
// best of 10 runs. The frozen network's convolutions use a GEMM of their own
// (tensor/cpu/packed_gemm.h), so "of peak" may pass 100%.
// Times are medians; "CPU ms" is the process CPU time (every thread, spin-waits included), which at
// 1 thread stays meaningful on a loaded machine. "faults" is the median count of minor page faults
// per forward (getrusage), which shows whether activations are recycled or mapped afresh.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "models/inception_resnet_v2.h"
#include "tensor/autograd.h"
#include "tensor/kernels.h"
#include "tensor/parallel.h"
#include "tensor/profiler.h"
#include "tensor/random.h"

namespace {

using glimpse::Tensor;
using Clock = std::chrono::steady_clock;

// 13.15 G multiply-adds at 299x299 (shared/reference/inception-resnet-v2.md;
// bench/inception_torch.py recounts them from the layer shapes: 26.31 GFLOP).
constexpr double kGflopPerImage299 = 26.3;

struct Options {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int64_t> batches{1, 8};
  int repeats = 3;
  int image_size = 299;
  int64_t peak_size = 1024;
  bool fold = true;
  bool profile = false;
};

long long parse_integer(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("bench_inception: " + flag + " expects an integer, got '" + text +
                              "'");
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("bench_inception: " + arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--threads") o.threads = static_cast<int>(parse_integer(arg, value()));
    else if (arg == "--repeats") o.repeats = static_cast<int>(parse_integer(arg, value()));
    else if (arg == "--image-size") o.image_size = static_cast<int>(parse_integer(arg, value()));
    else if (arg == "--peak-2048") o.peak_size = 2048;
    else if (arg == "--no-fold") o.fold = false;
    else if (arg == "--profile") o.profile = true;
    else if (arg == "--batches") {
      o.batches.clear();
      std::stringstream in(value());
      std::string item;
      while (std::getline(in, item, ',')) o.batches.push_back(parse_integer(arg, item));
    } else if (arg == "--help" || arg == "-h") {
      std::printf(
          "bench_inception [--threads N] [--batches 1,8] [--repeats 3] [--image-size 299] "
          "[--peak-2048] [--no-fold] [--profile]\n");
      std::exit(0);
    } else {
      throw std::invalid_argument("bench_inception: unknown flag '" + arg + "' (see --help)");
    }
  }
  if (o.threads < 1 || o.repeats < 1 || o.batches.empty() ||
      *std::min_element(o.batches.begin(), o.batches.end()) < 1)
    throw std::invalid_argument(
        "bench_inception: --threads, --repeats and batches must be positive");
  return o;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// CPU time of every thread of this process so far (spin-waits included), in seconds.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

struct Timing {
  double wall_seconds, cpu_seconds, minor_faults;  // medians
};

// Medians of `work` over `repeats` calls after one warmup.
template <class Work>
Timing median_timing(Work&& work, int repeats) {
  work();
  std::vector<double> wall, cpu, faults;
  for (int i = 0; i < repeats; ++i) {
    const long faults_start = minor_faults();
    const double cpu_start = process_cpu_seconds();
    const auto start = Clock::now();
    work();
    wall.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    cpu.push_back(process_cpu_seconds() - cpu_start);
    faults.push_back(static_cast<double>(minor_faults() - faults_start));
  }
  return {median(wall), median(cpu), median(faults)};
}

// GFLOP/s of the build's float32 n^3 product (the CPU kernel table's GEMM), the best of 10 runs
// (a peak is the best the machine showed).
double gemm_gflops(int64_t n) {
  const glimpse::Kernels<float>& k = glimpse::kernels_f32(glimpse::Device::CPU);
  std::vector<float> a(n * n), b(n * n), c(n * n);
  for (int64_t i = 0; i < n * n; ++i) {
    a[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f - 0.5f;
    b[i] = static_cast<float>((i * 104729) % 1000) * 1e-3f - 0.5f;
  }
  auto product = [&] {
    k.gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  };
  product();  // warmup
  double best = 1e30;
  for (int i = 0; i < 10; ++i) {
    const auto start = Clock::now();
    product();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return 2.0 * static_cast<double>(n * n * n) / best * 1e-9;
}

// Runs `repeats` forwards with the op profiler on and prints its table per forward.
void print_profile(glimpse::models::InceptionResNetV2& model, const Tensor& images, int repeats,
                   double forward_ms) {
  namespace profiler = glimpse::profiler;
  profiler::reset();
  profiler::set_enabled(true);
  for (int i = 0; i < repeats; ++i) Tensor features = model.forward(images);
  profiler::set_enabled(false);
  const std::vector<profiler::Entry> entries = profiler::entries();
  double total = 0;
  for (const auto& e : entries) total += e.seconds;
  std::printf("\nprofile, batch %lld: %.1f ms per forward in the ops below (the timed forward: %.1f "
              "ms), %d forwards\n",
              static_cast<long long>(images.shape()[0]), total * 1e3 / repeats, forward_ms, repeats);
  std::printf("%-24s %-34s %6s %10s %8s %7s\n", "op", "input  kernel/stride -> out", "calls",
              "ms/forward", "GFLOP/s", "share");
  for (const auto& e : entries) {
    const double gflops = e.flops > 0 ? e.flops / e.seconds * 1e-9 : 0;
    std::printf("%-24s %-34s %6lld %10.2f %8.1f %6.1f%%\n", e.op.c_str(), e.shape.c_str(),
                static_cast<long long>(e.calls / repeats), e.seconds * 1e3 / repeats, gflops,
                100.0 * e.seconds / total);
  }
  profiler::reset();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_options(argc, argv);
    glimpse::parallel::set_num_threads(o.threads);
    glimpse::NoGradGuard no_grad;

    const double peak = gemm_gflops(o.peak_size);
    glimpse::Generator gen(0);
    glimpse::models::InceptionConfig config = glimpse::models::InceptionConfig::full();
    config.image_size = o.image_size;
    glimpse::models::InceptionResNetV2 model(config, gen);
    model.eval();
    model.set_trainable(false);  // a frozen encoder, as in the notebook: BN uses moving statistics
    if (o.fold) model.fold_batch_norm();
    // FLOPs scale with the pixel count (approximately: VALID borders shift slightly).
    const double gflop_per_image =
        kGflopPerImage299 * (o.image_size / 299.0) * (o.image_size / 299.0);

    std::printf(
        "bench_inception (glimpse): Inception-ResNet-v2 %dx%d -> %lldx%lldx%lld, %lld weights, "
        "layout NHWC, threads=%d, BatchNorm %s\n",
        o.image_size, o.image_size, static_cast<long long>(model.grid_size()),
        static_cast<long long>(model.grid_size()), static_cast<long long>(model.output_channels()),
        static_cast<long long>(model.count_parameters() + model.count_buffers()), o.threads,
        o.fold ? "folded into the convolutions" : "as separate passes (--no-fold)");
    std::printf(
        "GEMM peak (the build's float32 GEMM, %lld^3, %d threads, best of 10): %.1f GFLOP/s; "
        "%.1f GFLOP per image\n",
        static_cast<long long>(o.peak_size), o.threads, peak, gflop_per_image);
    std::printf("%-14s %-14s %6s %8s %12s %12s %12s %12s %10s %10s\n", "framework", "layout",
                "batch", "threads", "ms / batch", "ms / image", "CPU ms/image", "GFLOP/s", "of peak",
                "faults");
    for (int64_t batch : o.batches) {
      Tensor images =
          glimpse::random_uniform({batch, o.image_size, o.image_size, 3}, -1.0, 1.0, gen);
      const int repeats = batch == 1 ? o.repeats : std::max(2, o.repeats / 2);
      const Timing t = median_timing([&] { Tensor features = model.forward(images); }, repeats);
      const double per_image_ms = t.wall_seconds * 1e3 / static_cast<double>(batch);
      const double cpu_per_image_ms = t.cpu_seconds * 1e3 / static_cast<double>(batch);
      const double gflops = gflop_per_image / (per_image_ms * 1e-3);
      std::printf("%-14s %-14s %6lld %8d %12.1f %12.1f %12.1f %12.1f %9.0f%% %10.0f\n", "glimpse",
                  "NHWC", static_cast<long long>(batch), o.threads, t.wall_seconds * 1e3,
                  per_image_ms, cpu_per_image_ms, gflops, 100.0 * gflops / peak, t.minor_faults);
      std::printf(
          "RESULT framework=glimpse layout=NHWC batch=%lld threads=%d ms_per_image=%.2f "
          "cpu_ms_per_image=%.2f peak_gflops=%.1f minor_faults_per_forward=%.0f bn_folded=%d\n",
          static_cast<long long>(batch), o.threads, per_image_ms, cpu_per_image_ms, peak,
          t.minor_faults, o.fold ? 1 : 0);
      if (o.profile) print_profile(model, images, repeats, t.wall_seconds * 1e3);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
