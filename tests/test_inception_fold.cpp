// Inference-time BatchNorm folding of the encoder (InceptionResNetV2::fold_batch_norm): folded and
// unfolded forwards agree, and a snapshot is never used once its weights changed or training may
// change them.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "models/inception_resnet_v2.h"
#include "support/gradcheck.h"
#include "tensor/autograd.h"
#include "tensor/random.h"

using namespace glimpse;
using namespace glimpse::models;
using glimpse::testing::max_abs;
using glimpse::testing::max_abs_diff;

namespace {

// A narrow member of the real network (VALID reductions, every block type once) and tiny.
InceptionConfig narrow_full() {
  InceptionConfig c = InceptionConfig::full();
  c.image_size = 79;
  c.width_divisor = 16;
  c.repeats_block35 = c.repeats_block17 = c.repeats_block8 = 1;
  return c;
}

// BatchNorm statistics and shifts away from their 0/1 defaults, so folding has real work to do.
void randomise_batch_norms(InceptionResNetV2& net, uint64_t seed) {
  Generator gen(seed);
  for (ConvBN* unit : net.layers_in_order()) {
    if (!unit->bn) continue;
    nn::BatchNormalization& bn = *unit->bn;
    const Shape shape = bn.moving_mean.shape();
    bn.moving_mean.copy_(random_uniform(shape, -0.5, 0.5, gen));
    bn.moving_variance.copy_(random_uniform(shape, 0.3, 3.0, gen));
    bn.beta.copy_(random_uniform(shape, -0.3, 0.3, gen));
  }
}

double relative_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = a.to_vector_f64(), vb = b.to_vector_f64();
  return max_abs_diff(va, vb) / std::max(1e-12, max_abs(vb));
}

Tensor infer(InceptionResNetV2& net, const Tensor& images) {
  NoGradGuard no_grad;
  return net.forward(images);
}

}  // namespace

TEST_CASE("folded and unfolded encoder forwards agree to 1e-5") {
  for (const InceptionConfig& config : {narrow_full(), InceptionConfig::tiny()}) {
    Generator gen(3);
    InceptionResNetV2 net(config, gen);
    randomise_batch_norms(net, 4);
    net.eval();
    net.set_trainable(false);
    Tensor images = random_uniform({2, config.image_size, config.image_size, 3}, -1, 1, gen);
    const Tensor unfolded = infer(net, images);
    net.fold_batch_norm();
    CHECK(net.batch_norm_folded());
    const Tensor folded = infer(net, images);
    CHECK(net.batch_norm_folded());  // used, not dropped
    REQUIRE(folded.shape() == unfolded.shape());
    CHECK(relative_difference(folded, unfolded) <= 1e-5);
    // A frozen encoder under a trainable decoder: grad mode on, but nothing in it needs a gradient.
    const Tensor frozen_in_training = net.forward(images);
    CHECK(net.batch_norm_folded());
    CHECK(relative_difference(frozen_in_training, unfolded) <= 1e-5);
    net.unfold_batch_norm();
    CHECK_FALSE(net.batch_norm_folded());
    CHECK(relative_difference(infer(net, images), unfolded) == 0.0);
  }
}

TEST_CASE("a folded snapshot is dropped when its weights change in place or are replaced") {
  const InceptionConfig config = InceptionConfig::tiny();
  Generator gen(5), other_gen(6);
  InceptionResNetV2 net(config, gen), other(config, other_gen);
  for (InceptionResNetV2* m : {&net, &other}) {
    m->eval();
    m->set_trainable(false);
  }
  Tensor images = random_uniform({1, config.image_size, config.image_size, 3}, -1, 1, gen);
  net.fold_batch_norm();
  infer(net, images);

  // Loading weights in place (as a checkpoint does, with copy_): same BN defaults, other kernels.
  auto target = net.named_tensors(), source = other.named_tensors();
  REQUIRE(target.size() == source.size());
  for (size_t i = 0; i < target.size(); ++i) target[i].tensor->copy_(*source[i].tensor);
  const Tensor after_load = infer(net, images);
  CHECK_FALSE(net.batch_norm_folded());
  CHECK(relative_difference(after_load, infer(other, images)) == 0.0);

  // Only BatchNorm statistics changed in place.
  net.fold_batch_norm();
  randomise_batch_norms(net, 7);
  const Tensor after_stats = infer(net, images);
  CHECK_FALSE(net.batch_norm_folded());
  net.fold_batch_norm();
  CHECK(relative_difference(infer(net, images), after_stats) <= 1e-5);

  // A tensor replaced by assignment (what to(device) and some loaders do).
  ConvBN& first = *net.layers_in_order().front();
  first.conv->kernel = mul_scalar(first.conv->kernel, 2.0);
  const Tensor after_replace = infer(net, images);
  CHECK_FALSE(first.batch_norm_folded());
  CHECK(net.layers_in_order()[1]->batch_norm_folded());  // the other units' weights did not change
  net.unfold_batch_norm();
  CHECK(relative_difference(after_replace, infer(net, images)) <= 1e-5);
}

TEST_CASE("a forward that may train drops the snapshot") {
  const InceptionConfig config = InceptionConfig::tiny();
  Generator gen(8);
  InceptionResNetV2 net(config, gen);
  net.eval();
  net.set_trainable(false);
  Tensor images = random_uniform({2, config.image_size, config.image_size, 3}, -1, 1, gen);
  net.fold_batch_norm();

  // Trainable, eval mode, gradients on: the weights may be updated after this forward.
  net.set_trainable(true);
  Tensor y = net.forward(images);
  CHECK_FALSE(net.batch_norm_folded());
  sum(y).backward();  // the unfolded path is differentiable as usual
  CHECK(net.layers_in_order().front()->conv->kernel.grad().defined());

  // BatchNorm in its training behaviour (batch statistics): never folded.
  net.fold_batch_norm();
  net.train();
  {
    NoGradGuard no_grad;
    net.forward(images);
  }
  CHECK_FALSE(net.batch_norm_folded());
}
