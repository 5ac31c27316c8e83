// The training loop end to end on a tiny generated shapes set: the loss goes down, and a run
// interrupted and resumed produces exactly the losses of an uninterrupted run with the same seed.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/batches.h"
#include "io/shapes_dataset.h"
#include "models/training.h"
#include "nn/losses.h"
#include "tensor/random.h"
#include <cmath>

using namespace glimpse;
using namespace glimpse::models;
namespace fs = std::filesystem;

namespace {
struct TinySetup {
  fs::path root;
  TrainData data;
  CaptionerConfig config;

  TinySetup() {
    root = fs::temp_directory_path() / ("glimpse_train_" + std::to_string(::getpid()));
    fs::remove_all(root);
    ShapesConfig sc;
    sc.train = 16;
    sc.val = 4;
    sc.test = 2;
    sc.seed = 5;
    generate_shapes_dataset((root / "data").string(), sc);
    data.train = read_coco_captions((root / "data/annotations/captions_train.json").string(),
                                    (root / "data/images/train").string());
    data.val = read_coco_captions((root / "data/annotations/captions_val.json").string(),
                                  (root / "data/images/val").string());
    data.tokenizer = build_caption_tokenizer(data.train, 64, 16);
    config = CaptionerConfig::tiny_shapes();
    config.vocab_size = static_cast<int64_t>(data.tokenizer.vocabulary_size());
    config.max_caption_len = 16;
    config.units = config.embedding_dim = 32;
  }
  ~TinySetup() { fs::remove_all(root); }

  TrainOptions options(const std::string& out) const {
    TrainOptions o;
    o.out_dir = (root / out).string();
    o.epochs = 2;
    o.batch_size = 4;
    o.seed = 3;
    o.progress_bar = false;
    o.sample_captions = 0;
    return o;
  }
};

// (global_step, training loss or validation loss) of every row of a train_log.csv.
std::vector<std::pair<int64_t, std::string>> log_steps_and_losses(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::pair<int64_t, std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream row(line);
    std::string field;
    while (std::getline(row, field, ',')) f.push_back(field);
    if (f.size() < 4) continue;
    rows.emplace_back(std::stoll(f[0]), f[3].empty() && f.size() == 7 ? "val " + f[6] : f[3]);
  }
  return rows;
}
}  // namespace

TEST_CASE("resume reproduces an uninterrupted run's losses exactly") {
  TinySetup s;
  // Uninterrupted: 2 epochs of 4 steps.
  Captioner straight(s.config, 11);
  TrainResult full = train_captioner(straight, s.data, s.options("straight"));
  REQUIRE(full.step_losses.size() == 8);

  // Interrupted after 6 steps (mid-epoch 2), then resumed from the checkpoint.
  Captioner first(s.config, 11);
  TrainOptions o1 = s.options("resumed");
  o1.max_steps = 6;
  TrainResult part1 = train_captioner(first, s.data, o1);
  REQUIRE(part1.step_losses.size() == 6);
  Captioner second(s.config, 999);  // different init: everything must come from the checkpoint
  TrainOptions o2 = s.options("resumed");
  o2.resume = true;
  TrainResult part2 = train_captioner(second, s.data, o2);
  REQUIRE(part2.step_losses.size() == 2);
  for (int i = 0; i < 6; ++i) CHECK(part1.step_losses[i] == full.step_losses[i]);
  CHECK(part2.step_losses[0] == full.step_losses[6]);
  CHECK(part2.step_losses[1] == full.step_losses[7]);
  CHECK(fs::exists(s.root / "resumed/loss_curve.png"));
  // The resumed run's log covers the whole run: the uninterrupted run's steps and losses.
  CHECK(log_steps_and_losses(s.root / "resumed/train_log.csv") ==
        log_steps_and_losses(s.root / "straight/train_log.csv"));
}

TEST_CASE("resume drops log rows written after the checkpoint, and replaces a log it cannot read") {
  TinySetup s;
  Captioner straight(s.config, 11);
  train_captioner(straight, s.data, s.options("straight"));
  const auto expected = log_steps_and_losses(s.root / "straight/train_log.csv");
  REQUIRE(expected.size() == 10);  // 8 steps and 2 validation rows

  // A run checkpointed at step 6 that then logged steps 7 and 8 and died (killed) before saving.
  Captioner first(s.config, 11);
  TrainOptions o1 = s.options("crashed");
  o1.max_steps = 6;
  train_captioner(first, s.data, o1);
  const fs::path log = s.root / "crashed/train_log.csv";
  {
    std::ofstream append(log, std::ios::app);
    append << "7,2,3,9.5,0.001,100,\n8,2,4,9.25,0.001,100,\n";
  }
  Captioner second(s.config, 999);
  TrainOptions o2 = s.options("crashed");
  o2.resume = true;
  train_captioner(second, s.data, o2);
  CHECK(log_steps_and_losses(log) == expected);

  // A log that is not one (here: another program's file) is kept aside, and a new one started.
  Captioner third(s.config, 11);
  TrainOptions o3 = s.options("foreign");
  o3.max_steps = 6;
  train_captioner(third, s.data, o3);
  const fs::path foreign = s.root / "foreign/train_log.csv";
  { std::ofstream(foreign) << "name,value\nnot,a log\n"; }
  Captioner fourth(s.config, 999);
  TrainOptions o4 = s.options("foreign");
  o4.resume = true;
  train_captioner(fourth, s.data, o4);
  CHECK(fs::exists(s.root / "foreign/train_log.csv.old"));
  const auto rows = log_steps_and_losses(foreign);
  REQUIRE(rows.size() == 3);  // steps 7 and 8 and the last validation
  CHECK(rows.front() == expected[expected.size() - 3]);
}

TEST_CASE("resume after a checkpoint on an epoch's last step validates that epoch once") {
  TinySetup s;
  auto one_step_epochs = [&](const std::string& out) {
    TrainOptions o = s.options(out);
    o.batch_size = 16;  // the 16 training images: one step per epoch
    return o;
  };
  Captioner straight(s.config, 11);
  train_captioner(straight, s.data, one_step_epochs("straight"));
  const auto expected = log_steps_and_losses(s.root / "straight/train_log.csv");
  REQUIRE(expected.size() == 4);  // step 1, validation, step 2, validation

  // Stopped right after the first step: the checkpoint is saved on the epoch's last step,
  // before its validation. The run then died after logging that validation (faked here), before
  // its end-of-epoch checkpoint.
  std::atomic<bool> stop{true};
  Captioner first(s.config, 11);
  TrainOptions o1 = one_step_epochs("killed");
  o1.stop_requested = &stop;
  REQUIRE(train_captioner(first, s.data, o1).interrupted);
  const fs::path log = s.root / "killed/train_log.csv";
  { std::ofstream(log, std::ios::app) << "1,1,1,,,,0.5\n"; }
  Captioner second(s.config, 999);
  TrainOptions o2 = one_step_epochs("killed");
  o2.resume = true;
  train_captioner(second, s.data, o2);
  CHECK(log_steps_and_losses(log) == expected);
}

TEST_CASE("the loss goes down when fitting a few batches") {
  TinySetup s;
  Captioner model(s.config, 2);
  TrainOptions o = s.options("fit");
  o.epochs = 12;
  o.learning_rate = 3e-3;
  TrainResult r = train_captioner(model, s.data, o);
  const double first = (r.step_losses[0] + r.step_losses[1] + r.step_losses[2] + r.step_losses[3]) / 4;
  const size_t n = r.step_losses.size();
  const double last =
      (r.step_losses[n - 1] + r.step_losses[n - 2] + r.step_losses[n - 3] + r.step_losses[n - 4]) / 4;
  CHECK(last < 0.7 * first);
}

TEST_CASE("k captions per image: encoding once and repeating equals encoding k copies") {
  TinySetup s;
  Captioner model(s.config, 4);
  Generator gen(9);
  Tensor images = random_uniform({2, 128, 128, 3}, -1, 1, gen);
  std::vector<int32_t> ids, tg;
  for (int r = 0; r < 6; ++r)
    for (int t = 0; t < 5; ++t) {
      ids.push_back(t == 0 ? 3 : 5 + (r * 7 + t) % 9);
      tg.push_back(t == 4 ? 0 : 5 + (r * 5 + t) % 9);
    }
  Tensor inputs = Tensor::from_vector(ids, {6, 5}), targets = Tensor::from_vector(tg, {6, 5});
  auto loss_and_grads = [&](bool repeat) {
    model.zero_grad();
    Tensor features = repeat ? repeat_each_row(model.encode(images), 3)
                             : model.encode(concat({slice(images, 0, 0, 1), slice(images, 0, 0, 1),
                                                    slice(images, 0, 0, 1), slice(images, 0, 1, 2),
                                                    slice(images, 0, 1, 2), slice(images, 0, 1, 2)},
                                                   0));
    Tensor loss = nn::masked_sparse_categorical_crossentropy(model.decode(features, inputs), targets);
    loss.backward();
    std::vector<std::vector<float>> grads;
    for (const nn::NamedTensor& p : model.named_parameters(true)) grads.push_back(p.tensor->grad().to_vector());
    return std::make_pair(loss.item(), grads);
  };
  model.eval();  // batch norm in inference mode: the batch statistics would differ with copies
  auto [l1, g1] = loss_and_grads(true);
  auto [l2, g2] = loss_and_grads(false);
  CHECK(l1 == doctest::Approx(l2).epsilon(1e-6));
  REQUIRE(g1.size() == g2.size());
  for (size_t i = 0; i < g1.size(); ++i) {
    double worst = 0, scale = 1e-6;
    for (size_t j = 0; j < g1[i].size(); ++j) {
      worst = std::max(worst, static_cast<double>(std::fabs(g1[i][j] - g2[i][j])));
      scale = std::max(scale, static_cast<double>(std::fabs(g2[i][j])));
    }
    CHECK(worst <= 1e-4 * scale);
  }
  CHECK_THROWS(repeat_each_row(images, 0));
}

TEST_CASE("a non-finite loss stops training with the step named") {
  TinySetup s;
  Captioner model(s.config, 2);
  TrainOptions o = s.options("nan");
  o.learning_rate = 1e30;  // the first update blows the weights up
  CHECK_THROWS_AS(train_captioner(model, s.data, o), NonFiniteLoss);
  try {
    Captioner again(s.config, 2);
    train_captioner(again, s.data, o);
  } catch (const NonFiniteLoss& e) {
    CHECK(std::string(e.what()).find("global step") != std::string::npos);
  }
}
