// The training loop behind tools/train: epochs of teacher-forced steps with Adam, a progress bar,
// validation loss and sample captions after each epoch, atomic checkpoints every N steps and at
// each epoch, exact resume, a CSV log and a PNG loss curve.
#pragma once
#include <atomic>
#include <nlohmann/json.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/captions.h"
#include "io/checkpoint.h"
#include "io/feature_cache.h"
#include "io/tokenizer.h"
#include "models/captioner.h"
#include "nn/optim.h"

namespace glimpse::dist {
class Communicator;
}

namespace glimpse::models {

struct TrainOptions {
  std::string out_dir = "runs/default";
  int epochs = 1;
  int batch_size = 32;           // the GLOBAL batch: with N ranks each takes batch_size / N
  double learning_rate = 1e-3;
  double clip_norm = 0;          // 0 = no clipping
  int warmup_steps = 0;          // > 0: linear warmup then cosine decay over the run
  uint64_t seed = 0;
  int64_t checkpoint_every = 0;  // steps; 0 = only at the end of each epoch
  bool resume = false;
  bool all_pairs = false;
  int captions_per_image = 1;  // k captions per image per step (encoder once, decoder k times)
  bool cache_images = false;
  Device device = Device::CPU;
  int64_t max_steps = -1;        // stop after this many steps of this call (tests, smoke runs)
  int sample_captions = 3;       // printed after each epoch
  bool progress_bar = true;
  std::shared_ptr<FeatureCache> feature_cache;
  std::atomic<bool>* stop_requested = nullptr;  // set by a Ctrl-C handler
  // Data-parallel training (docs/distributed.md) when set to an MPI or NCCL communicator: this
  // process is one rank; parameters start from rank 0's, gradients are summed over the ranks each
  // step, and only rank 0 prints, logs, plots and saves. Null (or "none"): one process.
  dist::Communicator* comm = nullptr;
};

struct TrainData {
  CaptionDataset train;
  CaptionDataset val;
  Tokenizer tokenizer;
};

struct TrainResult {
  std::vector<double> step_losses;  // the losses of the steps run in this call
  int64_t global_step = 0;
  std::string checkpoint;           // the last checkpoint written ("" if none)
  bool interrupted = false;
  double last_val_loss = 0;
  double communication_seconds = 0;  // data-parallel: time inside collective calls (this rank)
};

// Thrown when the loss stops being finite; the message names the step and the last checkpoint.
struct NonFiniteLoss : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Trains `model` on data.train for options.epochs epochs (with options.resume, on from the
// checkpoint in options.out_dir), writing checkpoints, the log and the loss curve there. Each step
// is one teacher-forced batch: forward, masked loss, backward, Adam step. Returns early, after a
// checkpoint, when options.stop_requested is set; throws NonFiniteLoss.
TrainResult train_captioner(Captioner& model, const TrainData& data, const TrainOptions& options);

// x [B, ...] -> [B*k, ...] with row i repeated k times (rows i*k .. i*k+k-1): one image's features
// serving its k captions. Differentiable: the gradient of row i is the sum over its k copies.
Tensor repeat_each_row(const Tensor& x, int64_t k);

// Saves model + optimizer + tokenizer + progress atomically to `path`.
void save_training_checkpoint(const std::string& path, Captioner& model, nn::Optimizer* optimizer,
                              const Tokenizer& tokenizer, const nlohmann::json& progress);

// A checkpoint's metadata with its model config parsed and checked (every field's type and
// range, the tokenizer's sequence length, a vocabulary as long as the output layer), before
// anything is built from it; errors name the file and the field.
struct CheckpointModel {
  CheckpointContents meta;
  CaptionerConfig config;
  int sequence_length = 0;  // the tokenizer's
};
CheckpointModel read_checkpoint_model(const std::string& path);

struct LoadedModel {
  std::unique_ptr<Captioner> model;
  std::unique_ptr<Tokenizer> tokenizer;
  nlohmann::json progress;
};
// Loads a checkpoint for inference: builds the model from the stored config (checked by
// read_checkpoint_model), fills its weights, restores the tokenizer. The model is in eval mode,
// and on the CPU the encoder's BatchNorms are folded into its convs.
LoadedModel load_captioner(const std::string& checkpoint_path, Device device = Device::CPU);

// The mean masked loss over a split (no gradients): each batch's mean over its real tokens,
// weighted by its number of images. With a data-parallel communicator `batch_size` is the global
// batch (divisible by the ranks): each rank evaluates its slice of every batch and the ranks'
// sums are added up, so every rank returns the value one process would compute.
double evaluate_loss(Captioner& model, const CaptionDataset& data, const Tokenizer& tokenizer,
                     int batch_size, Device device, const std::shared_ptr<FeatureCache>& cache,
                     dist::Communicator* comm = nullptr);

}  // namespace glimpse::models
