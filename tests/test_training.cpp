// The training loop end to end on a tiny generated shapes set: the loss goes down, and a run
// interrupted and resumed produces exactly the losses of an uninterrupted run with the same seed.
#include <doctest/doctest.h>

#include <filesystem>

#include "io/batches.h"
#include "io/shapes_dataset.h"
#include "models/training.h"

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
  CHECK(fs::exists(s.root / "resumed/train_log.csv"));
  CHECK(fs::exists(s.root / "resumed/loss_curve.png"));
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
