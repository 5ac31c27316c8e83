// The ops layer and the captioner on the GPU against the CPU: every op's output and input
// gradients, one full training step (loss, every parameter's gradient, the Adam update) and Adam
// fused over all parameters. Kernel-by-kernel parity lives in test_cuda_parity.cpp. Skipped, with
// a message, where no CUDA device exists.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>

#include "models/captioner.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/autograd.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace glimpse;

namespace {

bool skip_without_cuda() {
  if (cuda_available()) return false;
  MESSAGE("skipped: no CUDA device");
  return true;
}

// max |a - b| / max(1, max |b|)
double rel_err(const Tensor& gpu, const Tensor& cpu) {
  std::vector<float> a = gpu.to_vector(), b = cpu.to_vector();
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / scale;
}

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on copies of the inputs on both devices; compares outputs and input gradients.
void compare_devices(const std::string& name, const OpFn& f, const std::vector<Tensor>& host_inputs,
                     double tolerance = 1e-5) {
  std::vector<Tensor> cpu, gpu;
  for (const Tensor& t : host_inputs) {
    Tensor c = t.clone().detach(), g = t.to(Device::CUDA);
    if (t.dtype() == DType::F32) {
      c.set_requires_grad(true);
      g.set_requires_grad(true);
    }
    cpu.push_back(c);
    gpu.push_back(g);
  }
  Tensor yc = f(cpu), yg = f(gpu);
  CHECK_MESSAGE(yg.device() == Device::CUDA, name << ": output not on the GPU");
  const double fwd = rel_err(yg, yc);
  CHECK_MESSAGE(fwd <= tolerance, name << ": forward rel err " << fwd);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> w(yc.numel());
  for (float& x : w) x = u(rng);
  Tensor wc = Tensor::from_vector(w, yc.shape());
  sum(mul(yc, wc)).backward();
  sum(mul(yg, wc.to(Device::CUDA))).backward();
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (cpu[i].dtype() != DType::F32 || !cpu[i].grad().defined()) continue;
    REQUIRE_MESSAGE(gpu[i].grad().defined(), name << ": no GPU gradient for input " << i);
    const double err = rel_err(gpu[i].grad(), cpu[i].grad());
    CHECK_MESSAGE(err <= tolerance, name << ": gradient of input " << i << " rel err " << err);
  }
}

Tensor rnd(const Shape& s, Generator& g, double lo = -1, double hi = 1) {
  return random_uniform(s, lo, hi, g);
}

}  // namespace

// cuda/ registers itself with tensor/'s kernel table from a static initializer; a build with
// the CUDA backend whose link dropped that object would silently run without it.
TEST_CASE("the CUDA backend is linked in exactly when the build has it") {
#ifdef GLIMPSE_WITH_CUDA
  CHECK(backend_linked(Device::CUDA));
  const std::string expected = cuda_available() ? "" : "no CUDA device is available";
#else
  CHECK_FALSE(backend_linked(Device::CUDA));
  const std::string expected = "this program has no CUDA backend";
#endif
  CHECK(backend_linked(Device::CPU));
  if (!expected.empty()) {
    try {
      kernels_f32(Device::CUDA);
      FAIL("kernels_f32(CUDA) did not throw");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find(expected) != std::string::npos);
    }
  }
}

TEST_CASE("every op on the GPU matches the CPU, forward and backward") {
  if (skip_without_cuda()) return;
  Generator g(1);
  compare_devices("add broadcast", [](auto& x) { return add(x[0], x[1]); }, {rnd({3, 1, 5}, g), rnd({4, 1}, g)});
  compare_devices("sub", [](auto& x) { return sub(x[0], x[1]); }, {rnd({3, 4}, g), rnd({4}, g)});
  compare_devices("mul", [](auto& x) { return mul(x[0], x[1]); }, {rnd({2, 3, 4}, g), rnd({3, 1}, g)});
  compare_devices("div", [](auto& x) { return div(x[0], x[1]); }, {rnd({5, 3}, g), rnd({3}, g, 0.5, 2)});
  compare_devices("unary chain", [](auto& x) {
    return add(add(tanh(x[0]), sigmoid(x[0])), add(relu(x[0]), add(exp(x[0]), square(x[0]))));
  }, {rnd({7, 9}, g)});
  compare_devices("log/sqrt/pow", [](auto& x) {
    return add(log(x[0]), add(sqrt(x[0]), pow_scalar(x[0], 1.5)));
  }, {rnd({6, 5}, g, 0.2, 2)});
  compare_devices("scalar ops", [](auto& x) { return add_scalar(mul_scalar(neg(x[0]), 3.0), 2.0); }, {rnd({4}, g)});
  compare_devices("sum/mean", [](auto& x) { return add(sum(x[0], {0, 2}), mean(x[0], {0, 2})); }, {rnd({3, 4, 5}, g)});
  compare_devices("max", [](auto& x) { return max(x[0], 1); }, {rnd({3, 7, 2}, g)});
  compare_devices("softmax", [](auto& x) { return softmax(x[0], 1); }, {rnd({3, 6, 2}, g)});
  compare_devices("log_softmax", [](auto& x) { return log_softmax(x[0], -1); }, {rnd({5, 11}, g)});
  compare_devices("views", [](auto& x) {
    return transpose(slice(reshape(x[0], {4, 6}), 1, 1, 5), 0, 1).contiguous();
  }, {rnd({2, 12}, g)});
  compare_devices("concat/split", [](auto& x) {
    auto parts = split(concat({x[0], x[1]}, 1), {2, 5}, 1);
    return mul(sum(parts[0], {1}, true), parts[1]);
  }, {rnd({3, 4}, g), rnd({3, 3}, g)});
  compare_devices("matmul", [](auto& x) { return matmul(x[0], x[1], false, true); }, {rnd({5, 7}, g), rnd({3, 7}, g)});
  compare_devices("batched matmul", [](auto& x) { return matmul(x[0], x[1], true, false); }, {rnd({2, 7, 5}, g), rnd({2, 7, 3}, g)});
  compare_devices("dense on a sequence", [](auto& x) { return matmul(x[0], x[1]); }, {rnd({2, 5, 7}, g), rnd({7, 3}, g)});
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{0, 3, 3, 1, 4, 0}, {2, 3});
  compare_devices("gather_rows", [&](auto& x) { return gather_rows(x[0], x[1]); }, {rnd({5, 4}, g), ids});
  Tensor signed_ids = Tensor::from_vector(std::vector<int32_t>{-1, 2, -3, 0}, {2, 2});
  compare_devices("gather with negative indices", [&](auto& x) { return gather(x[0], x[1], 1); },
                  {rnd({2, 3, 4}, g), signed_ids});
  Tensor targets = Tensor::from_vector(std::vector<int32_t>{2, 0, 5, 1, 0, 3}, {2, 3});
  compare_devices("cross_entropy", [&](auto& x) { return cross_entropy(x[0], x[1], 0); }, {rnd({2, 3, 6}, g, -3, 3), targets});
  compare_devices("layer_norm", [](auto& x) { return layer_norm(x[0], x[1], x[2], 1e-3); },
                  {rnd({4, 3, 8}, g), rnd({8}, g), rnd({8}, g)});
  for (bool training : {false, true})
    compare_devices(training ? "batch_norm (training)" : "batch_norm (inference)", [&](auto& x) {
      Tensor mm = Tensor::zeros({5}, DType::F32, x[0].device()), mv = Tensor::ones({5}, DType::F32, x[0].device());
      return batch_norm(x[0], x[1], x[2], mm, mv, training, 0.99, 1e-3);
    }, {rnd({2, 3, 3, 5}, g), rnd({5}, g), rnd({5}, g)});
  for (Padding p : {Padding::Same, Padding::Valid})
    for (int s : {1, 2}) {
      compare_devices("conv2d", [&](auto& x) { return conv2d(x[0], x[1], s, s, p); }, {rnd({2, 7, 6, 3}, g), rnd({3, 3, 3, 4}, g)});
      compare_devices("max_pool2d", [&](auto& x) { return max_pool2d(x[0], 3, 3, s, s, p); }, {rnd({2, 7, 6, 3}, g)});
      compare_devices("avg_pool2d", [&](auto& x) { return avg_pool2d(x[0], 3, 3, s, s, p); }, {rnd({2, 7, 6, 3}, g)});
    }
  compare_devices("conv2d 1x1", [](auto& x) { return conv2d(x[0], x[1], 1, 1, Padding::Same); }, {rnd({2, 5, 5, 6}, g), rnd({1, 1, 6, 4}, g)});
  {
    // The options beyond Keras's same/valid: explicit pads, SAME_LOWER, dilation, groups,
    // depthwise, ceil_mode and count_include_pad.
    Conv2dOptions o;
    o.padding = Padding2d::explicit_pads(2, 0, 1, 3);
    o.dilation_h = 2;
    o.stride_w = 2;
    compare_devices("conv2d pads + dilation", [&](auto& x) { return conv2d(x[0], x[1], o); }, {rnd({2, 9, 8, 3}, g), rnd({3, 2, 3, 4}, g)});
    o = Conv2dOptions();
    o.padding = Padding2d::same_lower();
    o.groups = 2;
    o.stride_h = o.stride_w = 2;
    compare_devices("conv2d groups", [&](auto& x) { return conv2d(x[0], x[1], o); }, {rnd({2, 7, 6, 4}, g), rnd({3, 3, 2, 6}, g)});
    o.groups = 4;
    o.dilation_h = o.dilation_w = 2;
    o.stride_h = o.stride_w = 1;
    compare_devices("conv2d depthwise", [&](auto& x) { return conv2d(x[0], x[1], o); }, {rnd({2, 7, 6, 4}, g), rnd({3, 3, 1, 8}, g)});
    Pool2dOptions p;
    p.stride_h = p.stride_w = 2;
    p.padding = Padding2d::explicit_pads(1, 0, 2, 1);
    p.ceil_mode = true;
    compare_devices("avg_pool2d ceil_mode", [&](auto& x) { return avg_pool2d(x[0], 3, 3, p); }, {rnd({2, 7, 6, 3}, g)});
    p.count_include_pad = true;
    compare_devices("avg_pool2d count_include_pad", [&](auto& x) { return avg_pool2d(x[0], 3, 3, p); }, {rnd({2, 7, 6, 3}, g)});
    p.count_include_pad = false;
    p.dilation_h = 2;
    compare_devices("max_pool2d dilated ceil_mode", [&](auto& x) { return max_pool2d(x[0], 3, 3, p); }, {rnd({2, 9, 6, 3}, g)});
  }
  compare_devices("gru_sequence", [](auto& x) {
    auto [seq, state] = gru_sequence(x[0], x[1], x[2], x[3], x[4]);
    return add(sum(seq, {1}), state);
  }, {rnd({3, 6, 4}, g), rnd({3, 5}, g), rnd({4, 15}, g), rnd({5, 15}, g), rnd({2, 15}, g)});
  compare_devices("gru_sequence, reset before the matmul, go_backwards", [](auto& x) {
    auto [seq, state] = gru_sequence(x[0], x[1], x[2], x[3], x[4], GruOptions{false, true});
    return add(sum(mul(seq, seq), {1}), state);
  }, {rnd({3, 6, 4}, g), rnd({3, 5}, g), rnd({4, 15}, g), rnd({5, 15}, g), rnd({15}, g)});
  compare_devices("gru_sequence, go_backwards", [](auto& x) {
    auto [seq, state] = gru_sequence(x[0], x[1], x[2], x[3], x[4], GruOptions{true, true});
    return add(sum(mul(seq, seq), {1}), state);
  }, {rnd({3, 6, 4}, g), rnd({3, 5}, g), rnd({4, 15}, g), rnd({5, 15}, g), rnd({2, 15}, g)});
  compare_devices("where", [](auto& x) { return where(relu(x[0]), x[1], x[2]); }, {rnd({4, 5}, g), rnd({4, 5}, g), rnd({5}, g)});
  compare_devices("dropout (same mask on both devices)", [](auto& x) { return dropout(x[0], 0.3, 17); }, {rnd({64, 33}, g)});
  // No-gradient ops.
  Tensor x = rnd({6, 20}, g);
  CHECK(argmax(x.to(Device::CUDA)).to_vector_i32() == argmax(x).to_vector_i32());
  auto [vg, ig] = topk(x.to(Device::CUDA), 5);
  auto [vc, ic] = topk(x, 5);
  CHECK(ig.to_vector_i32() == ic.to_vector_i32());
  CHECK(rel_err(vg, vc) == 0.0);
}

TEST_CASE("a full captioner training step gives the same loss and gradients on both devices") {
  if (skip_without_cuda()) return;
  models::CaptionerConfig config = models::CaptionerConfig::tiny_shapes();
  config.vocab_size = 40;
  config.max_caption_len = 12;
  models::Captioner cpu_model(config, 5), gpu_model(config, 5);
  gpu_model.to(Device::CUDA);
  Generator g(9);
  Tensor images = rnd({4, 128, 128, 3}, g);
  std::vector<int32_t> tok(4 * 12), tgt(4 * 12, 0);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>((i * 7) % 40);
  for (size_t i = 0; i + 1 < tok.size(); ++i) tgt[i] = (i % 12 == 11) ? 0 : tok[i + 1];
  Tensor tokens = Tensor::from_vector(tok, {4, 12}), targets = Tensor::from_vector(tgt, {4, 12});
  auto step_loss = [&](models::Captioner& m, Device d) {
    Tensor logits = m.decode(m.encode(images.to(d)), tokens.to(d));
    return nn::masked_sparse_categorical_crossentropy(logits, targets.to(d));
  };
  Tensor lc = step_loss(cpu_model, Device::CPU), lg = step_loss(gpu_model, Device::CUDA);
  CHECK(std::fabs(lc.item() - lg.item()) <= 1e-4 * std::max(1.0, std::fabs(lc.item())));
  lc.backward();
  lg.backward();
  auto pc = cpu_model.named_parameters(true), pg = gpu_model.named_parameters(true);
  REQUIRE(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    REQUIRE_MESSAGE(pg[i].tensor->grad().defined(), pg[i].name);
    const double err = rel_err(pg[i].tensor->grad(), pc[i].tensor->grad());
    CHECK_MESSAGE(err <= 1e-4, pc[i].name << ": gradient rel err " << err);
  }
  // The Adam step that follows, fused over every parameter (one launch on the GPU), against the
  // same step on the CPU from the GPU's own gradients: the two devices' gradients differ by
  // rounding, which Adam's normalisation m / sqrt(v) magnifies for gradients near zero.
  std::vector<Tensor> host(pg.size());
  std::vector<nn::NamedTensor> host_named;
  for (size_t i = 0; i < pg.size(); ++i) {
    host[i] = pg[i].tensor->to(Device::CPU).detach();
    host[i].set_requires_grad(true);
    host[i].backward(pg[i].tensor->grad().to(Device::CPU));
    host_named.push_back({pg[i].name, &host[i], false});
  }
  nn::Adam adam_gpu(pg, std::make_shared<nn::ConstantLr>(1e-3));
  nn::Adam adam_cpu(host_named, std::make_shared<nn::ConstantLr>(1e-3));
  adam_gpu.step();
  adam_cpu.step();
  for (size_t i = 0; i < pg.size(); ++i) {
    const double err = rel_err(*pg[i].tensor, host[i]);
    CHECK_MESSAGE(err <= 1e-5, pg[i].name << ": parameter after one Adam step, rel err " << err);
  }
}

TEST_CASE("nn::Adam fused over all parameters on the GPU matches the CPU over three steps") {
  if (skip_without_cuda()) return;
  Generator g(11);
  const std::vector<Shape> shapes = {{7, 13}, {0}, {1}, {40001}, {5}, {3, 3}};
  std::vector<Tensor> cpu, gpu;
  std::vector<nn::NamedTensor> named_cpu, named_gpu;
  for (const Shape& s : shapes) {
    Tensor w = rnd(s, g);
    cpu.push_back(w.clone().detach());
    gpu.push_back(w.to(Device::CUDA).detach());
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    named_cpu.push_back({"p" + std::to_string(i), &cpu[i], false});
    named_gpu.push_back({"p" + std::to_string(i), &gpu[i], false});
  }
  nn::Adam adam_cpu(named_cpu, std::make_shared<nn::ConstantLr>(0.01));
  nn::Adam adam_gpu(named_gpu, std::make_shared<nn::ConstantLr>(0.01));
  for (int step = 0; step < 3; ++step) {
    adam_cpu.zero_grad();
    adam_gpu.zero_grad();
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (i == 5) continue;  // no gradient: left alone
      Tensor grad = rnd(shapes[i], g, -2, 2);
      cpu[i].set_requires_grad(true);
      gpu[i].set_requires_grad(true);
      cpu[i].backward(grad);
      gpu[i].backward(grad.to(Device::CUDA));
    }
    adam_cpu.step();
    adam_gpu.step();
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    CHECK(gpu[i].device() == Device::CUDA);
    const double err = rel_err(gpu[i], cpu[i]);
    CHECK_MESSAGE(err <= 1e-5, "parameter " << i << ": rel err " << err);
  }
  const auto state_cpu = adam_cpu.state(), state_gpu = adam_gpu.state();
  REQUIRE(state_cpu.size() == state_gpu.size());
  for (size_t i = 0; i < state_cpu.size(); ++i) {
    const double err = rel_err(*state_gpu[i].tensor, *state_cpu[i].tensor);
    CHECK_MESSAGE(err <= 1e-5, state_cpu[i].name << ": rel err " << err);
  }
}
