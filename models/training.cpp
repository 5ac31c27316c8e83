// The training loop (see training.h).
#include "models/training.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "io/atomic_file.h"
#include "io/batches.h"
#include "io/checkpoint.h"
#include "io/fault_injection.h"
#include "io/plot.h"
#include "io/image.h"
#include "models/caption_image.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/autograd.h"

namespace glimpse::models {

namespace fs = std::filesystem;

namespace {

// Model state in checkpoints: every parameter and buffer of the captioner.
std::vector<nn::NamedTensor> model_state(Captioner& model) { return model.named_tensors(); }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const int s = static_cast<int>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%d:%02d", s / 60, s % 60);
  return buf;
}

// Runs the model on one batch and returns the masked loss.
Tensor batch_loss(Captioner& model, const CaptionBatch& batch, bool from_features, Device device) {
  Tensor x = batch.pixels_or_features.to(device);
  Tensor features = from_features ? model.project_features(x) : model.encode(x);
  if (batch.captions_per_image > 1) features = repeat_each_row(features, batch.captions_per_image);
  // The targets stay on the host: the loss reads them there to pick the non-padding rows.
  return model.loss(features, batch.input_ids.to(device), batch.target_ids);
}

// Whether a run is data-parallel: an MPI or NCCL communicator (even of one rank, so that
// `mpirun -np 1` runs the same code as N ranks); the "none" one changes nothing.
bool data_parallel(const dist::Communicator* comm) { return comm != nullptr && comm->backend() != "none"; }

// The real (non-padding) target tokens of a batch: the denominator of its masked mean loss.
// Counted on the host from the batch's CPU ids, before they move to the device.
int64_t real_tokens(const CaptionBatch& batch) {
  const Tensor ids = batch.target_ids.contiguous();
  const int32_t* p = ids.data<int32_t>();
  int64_t n = 0;
  for (int64_t i = 0; i < ids.numel(); ++i) n += p[i] != 0;
  return n;
}

// The buffers a training step changes: those of leaf layers that run their training behaviour
// (BatchNorm's moving statistics in a trained encoder). Data-parallel runs average them over the
// ranks each step so that the ranks keep one model; frozen ones are left alone, bit for bit.
void collect_training_buffers(const nn::Module& module, std::vector<Tensor*>& out) {
  if (module.children().empty()) {
    if (module.training_behaviour())
      for (const nn::NamedTensor& b : module.named_buffers()) out.push_back(b.tensor);
    return;
  }
  for (const nn::Module* child : module.children()) collect_training_buffers(*child, out);
}

constexpr const char* kLogHeader = "global_step,epoch,step,loss,learning_rate,images_per_second,val_loss";

// What loss_curve.png plots: the training loss per step, and the validation loss at the steps
// that ended an epoch (NaN elsewhere, so the plot draws points only there).
struct LossCurve {
  std::vector<float> train, val_by_step;
  void add_validation(float loss) {
    // A resumed run whose log was lost has no training points yet to attach this one to.
    if (train.empty()) return;
    val_by_step.resize(train.size(), std::nanf(""));
    val_by_step.back() = loss;
  }
};

// The CSV log, appended to row by row. Rows wait in memory and reach the disk (written and
// fsynced) with every checkpoint, in sync() before the checkpoint is saved: so the log always
// holds every row up to the checkpoint's step, and rows after it only when the run went on, which
// restore_log then drops on --resume.
class TrainLog {
 public:
  TrainLog(const std::string& path, bool truncate) : path_(path) {
    descriptor_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0644);
    if (descriptor_ < 0)
      throw std::runtime_error("train: cannot write " + path + " (" + std::strerror(errno) + ")");
  }
  ~TrainLog() {
    try {
      sync();
    } catch (const std::exception& e) {
      std::cerr << "warning: " << e.what() << "\n";
    }
    ::close(descriptor_);
  }
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  std::ostringstream& row() { return pending_; }
  void sync() {
    const std::string text = pending_.str();
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(descriptor_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error("train: cannot write " + path_ + " (" + std::strerror(errno) + ")");
      done += static_cast<size_t>(n);
    }
    pending_.str("");
    if (::fsync(descriptor_) != 0 && errno != EINVAL)
      throw std::runtime_error("train: cannot write " + path_ + " (" + std::strerror(errno) + ")");
  }

 private:
  std::string path_;
  int descriptor_ = -1;
  std::ostringstream pending_;
};

// "<path>.old", or "<path>.old.N" with the first N not taken: earlier saved logs are kept.
std::string unused_old_name(const std::string& path) {
  std::string candidate = path + ".old";
  for (int n = 1; fs::exists(candidate); ++n) candidate = path + ".old." + std::to_string(n);
  return candidate;
}

struct RestoredLog {
  std::string text;  // header + kept rows
  LossCurve curve;
};

// On --resume: the log's rows up to the checkpoint's global step, as text, and the losses they
// hold for the curve. Rows past that step were written after the checkpoint by a run that then
// died without saving again (a crash, a kill); the resumed run computes those steps afresh, so
// they are dropped rather than listed twice. So is a validation row at the checkpoint's own step
// when the checkpoint is not an end-of-epoch one (`validated` false): it was saved on the
// epoch's last step before the validation, which the resumed run then repeats. Returns false (and
// changes nothing) when the file is not a log this loop wrote.
bool restore_log(const std::string& path, int64_t resumed_step, bool validated, RestoredLog& out,
                 std::string& why) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line) || line != kLogHeader) {
    why = "its first line is not the log header";
    return false;
  }
  out.text = line + "\n";
  int64_t line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::stringstream row(line);
    std::string field;
    while (std::getline(row, field, ',')) fields.push_back(field);
    if (line.back() == ',') fields.emplace_back();  // getline drops a trailing empty field
    try {
      if (fields.size() != 7) throw std::invalid_argument("fields");
      const int64_t step = std::stoll(fields[0]);
      if (step > resumed_step) continue;
      if (step == resumed_step && fields[3].empty() && !validated) continue;
      if (!fields[3].empty()) {
        out.curve.train.push_back(std::stof(fields[3]));
      } else if (!fields[6].empty() && !out.curve.train.empty()) {
        out.curve.add_validation(std::stof(fields[6]));
      }
    } catch (const std::exception&) {
      why = "line " + std::to_string(line_number) + " is not a log row: '" + line + "'";
      return false;
    }
    out.text += line + "\n";
  }
  return true;
}

void write_loss_curve(const std::string& dir, const LossCurve& curve) {
  try {
    std::vector<std::vector<float>> series{curve.train};
    std::vector<std::string> labels{"train loss"};
    if (!curve.val_by_step.empty()) {
      series.push_back(curve.val_by_step);
      labels.push_back("validation loss");
    }
    write_png(dir + "/loss_curve.png", plot_lines(series, labels, 800, 480, "glimpse training loss"));
  } catch (const std::exception& e) {
    std::cerr << "warning: could not write the loss curve: " << e.what() << "\n";
  }
}

}  // namespace

Tensor repeat_each_row(const Tensor& x, int64_t k) {
  if (k < 1 || x.rank() < 1) throw std::invalid_argument("repeat_each_row: k >= 1 and rank >= 1 needed");
  const int64_t B = x.shape()[0], row = x.numel() / std::max<int64_t>(B, 1);
  std::vector<int32_t> rows(B * k);
  for (int64_t r = 0; r < B * k; ++r) rows[r] = static_cast<int32_t>(r / k);
  Shape out_shape = x.shape();
  out_shape[0] = B * k;
  // A gather of whole rows; its backward scatter-adds, summing the k copies' gradients.
  return reshape(gather_rows(reshape(x, {B, row}), Tensor::from_vector(rows, {B * k}).to(x.device())),
                 out_shape);
}

void save_training_checkpoint(const std::string& path, Captioner& model, nn::Optimizer* optimizer,
                              const Tokenizer& tokenizer, const nlohmann::json& progress) {
  CheckpointContents meta;
  meta.model_config = model.config().to_json();
  meta.progress = progress;
  meta.vocabulary = tokenizer.vocabulary();
  meta.model_config["sequence_length"] = tokenizer.sequence_length();
  std::vector<nn::NamedTensor> opt_state;
  int64_t iterations = 0;
  if (optimizer) {
    opt_state = optimizer->state();
    iterations = optimizer->iterations();
  }
  save_checkpoint(path, model_state(model), optimizer ? "adam" : "", opt_state, iterations, meta);
}

CheckpointModel read_checkpoint_model(const std::string& path) {
  CheckpointModel out;
  out.meta = read_checkpoint_meta(path);
  // Everything the metadata must satisfy is checked before the model is built: an absurd size
  // would fail as an allocation deep in a constructor, and a vocabulary shorter than the output
  // layer would fail only later, on every image.
  try {
    out.config = CaptionerConfig::from_json(out.meta.model_config);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("checkpoint " + path + ": " + e.what());
  }
  // Older checkpoints have no sequence_length: their tokenizer used the caption length.
  out.sequence_length = static_cast<int>(out.config.max_caption_len);
  if (const auto it = out.meta.model_config.find("sequence_length"); it != out.meta.model_config.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > CaptionerConfig::kMaxCaptionLen)
      throw std::runtime_error("checkpoint " + path + ": model_config: sequence_length must be an integer in [1, " +
                               std::to_string(CaptionerConfig::kMaxCaptionLen) + "], got " + it->dump());
    out.sequence_length = it->get<int>();
  }
  // Float32 weights, plus Adam's two moments when training resumes.
  const double bytes = 3 * 4 * (out.config.approximate_decoder_parameters() + 54e6);
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  if (memory > 0 && bytes > memory / 2) {
    std::ostringstream message;
    message << "checkpoint " << path << ": its model_config describes a model of about "
            << std::llround(out.config.approximate_decoder_parameters() / 1e6) << " million parameters ("
            << std::llround(bytes / 1e9) << " GB with optimizer state), more than half of this machine's "
            << std::llround(memory / 1e9) << " GB of memory";
    throw std::runtime_error(message.str());
  }
  if (out.meta.vocabulary.empty())
    throw std::runtime_error("checkpoint " + path + ": no tokenizer vocabulary");
  if (static_cast<int64_t>(out.meta.vocabulary.size()) != out.config.vocab_size)
    throw std::runtime_error("checkpoint " + path + ": vocabulary has " + std::to_string(out.meta.vocabulary.size()) +
                             " words but the model's vocab_size is " + std::to_string(out.config.vocab_size));
  return out;
}

LoadedModel load_captioner(const std::string& path, Device device) {
  const CheckpointModel stored = read_checkpoint_model(path);
  const CheckpointContents& meta = stored.meta;
  const int length = stored.sequence_length;
  LoadedModel out;
  out.model = std::make_unique<Captioner>(stored.config, 0);
  load_checkpoint_tensors(path, model_state(*out.model));
  out.model->to(device);
  out.model->eval();
  // A loaded model only runs inference: fold each BatchNorm into its conv once (CPU; the folded
  // path's speed-up was measured there), so every image costs one conv pass per unit.
  if (device == Device::CPU) out.model->encoder->fold_batch_norm();
  out.tokenizer = std::make_unique<Tokenizer>(meta.vocabulary, length);
  out.progress = meta.progress;
  return out;
}

double evaluate_loss(Captioner& model, const CaptionDataset& data, const Tokenizer& tokenizer,
                     int batch_size, Device device, const std::shared_ptr<FeatureCache>& cache,
                     dist::Communicator* comm) {
  if (data.images.empty()) return 0;
  NoGradGuard no_grad;
  const bool was_training = model.training();
  model.eval();
  const bool dp = data_parallel(comm);
  const int ranks = dp ? comm->size() : 1;
  if (batch_size % ranks != 0)
    throw std::invalid_argument("evaluate_loss: the batch of " + std::to_string(batch_size) +
                                " does not divide among " + std::to_string(ranks) + " ranks");
  BatcherOptions bo;
  bo.batch_size = batch_size / ranks;
  bo.shard_index = dp ? comm->rank() : 0;
  bo.shard_count = ranks;
  bo.keep_empty_batches = dp;  // every rank walks every batch, its slice possibly empty
  bo.image_size = model.config().image_size;
  bo.scaling = model.config().pixel_scaling;
  bo.drop_remainder = false;
  bo.feature_cache = cache;
  CaptionBatcher batcher(data, tokenizer, bo);
  batcher.start_epoch(0);
  CaptionBatch batch;
  double total = 0;
  int64_t n = 0;
  if (!dp) {
    while (batcher.next(batch)) {
      total += batch_loss(model, batch, cache != nullptr, device).item() * batch.size();
      n += batch.size();
    }
  } else {
    // Per global batch: this rank's loss sum, real tokens and images; summed over the ranks in
    // one call at the end, then combined as one process combines whole batches.
    std::vector<double> sums(3 * static_cast<size_t>(batcher.steps_per_epoch()), 0.0);
    for (size_t g = 0; batcher.next(batch); ++g) {
      if (batch.size() == 0) continue;
      const double tokens = static_cast<double>(real_tokens(batch));
      sums[3 * g] = batch_loss(model, batch, cache != nullptr, device).item() * tokens;
      sums[3 * g + 1] = tokens;
      sums[3 * g + 2] = static_cast<double>(batch.size());
    }
    dist::DataParallel(*comm).all_reduce_host(sums);
    for (size_t g = 0; g < sums.size(); g += 3) {
      if (sums[g + 2] == 0) continue;  // every image of this batch unreadable
      total += (sums[g + 1] > 0 ? sums[g] / sums[g + 1] : 0.0) * sums[g + 2];
      n += static_cast<int64_t>(sums[g + 2]);
    }
  }
  model.train(was_training);
  return n > 0 ? total / n : 0;
}

namespace {

// Where a run stands, in global batches: what a checkpoint's progress records.
struct Position {
  int epoch = 0;
  int64_t step = 0;  // steps done in this epoch
};

// What one epoch has done so far, for the progress bar, the log and the epoch's summary line.
struct EpochProgress {
  int epoch = 0;
  int64_t first_step = 0;  // where this call started the epoch (resume: past 0)
  int64_t step = 0;        // steps done in this epoch
  std::chrono::steady_clock::time_point start;
  double loss_sum = 0;  // of this call's steps, for the running mean
  int64_t losses = 0;
  int64_t images = 0;  // global: img/s is the whole job's throughput
  double mean_loss() const { return losses ? loss_sum / losses : 0; }
};

// What one training step did.
struct StepResult {
  bool skipped = false;  // data-parallel: every image of the global batch unreadable, nothing done
  double loss = 0;       // the global batch's mean masked loss
  double learning_rate = 0;
  int64_t images = 0;  // in the global batch
  bool stop = false;   // data-parallel: some rank was asked to stop (Ctrl-C), so every rank stops
};

// One call of train_captioner: the state its named steps share. The constructor prepares the run
// (batches, optimizer, resume, the ranks' common start, the log); train_captioner drives the loop.
// Data-parallel: `lead_` (rank 0) alone prints, logs, plots and saves; every rank trains.
class TrainingRun {
 public:
  TrainingRun(Captioner& model, const TrainData& data, const TrainOptions& opt);

  Position start() const { return start_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  EpochProgress start_epoch(int epoch);
  bool next_batch(CaptionBatch& batch) { return batcher_->next(batch); }
  bool step_limit_reached() const {
    return opt_.max_steps >= 0 && static_cast<int64_t>(result_.step_losses.size()) >= opt_.max_steps;
  }
  StepResult train_step(const CaptionBatch& batch, const EpochProgress& progress);
  void record_step(const StepResult& s, EpochProgress& progress);
  bool checkpoint_due() const { return opt_.checkpoint_every > 0 && global_step_ % opt_.checkpoint_every == 0; }
  bool stop_requested(const StepResult& s) const {
    return dp_ ? s.stop : opt_.stop_requested && opt_.stop_requested->load();
  }
  TrainResult interrupt(Position at);
  void end_progress_bar() const {
    if (opt_.progress_bar && lead_) std::cout << "\n";
  }
  void validate(const EpochProgress& progress);
  void print_sample_captions();
  void checkpoint(Position at);
  void plot_loss_curve() const {
    if (lead_) write_loss_curve(opt_.out_dir, curve_);
  }
  TrainResult finish();

 private:
  void prepare_batches();
  void build_optimizer();
  void resume();
  void share_start_between_ranks();
  void check_feature_cache() const;
  void open_log();
  nlohmann::json progress_json(Position at) const;

  Captioner& model_;
  const TrainData& data_;
  const TrainOptions& opt_;
  const std::string ckpt_path_;
  const bool from_features_;
  const bool dp_;
  const bool lead_;
  std::optional<dist::DataParallel> sync_;
  std::optional<CaptionBatcher> batcher_;
  int64_t steps_per_epoch_ = 0;
  std::optional<nn::Adam> optimizer_;
  Position start_;
  int64_t global_step_ = 0;
  // Everything a rank's copy of the run consists of: the weights, the buffers and the optimizer's
  // moments. Rank 0's is broadcast to every rank at the start (ranks built the model from the same
  // seed and read the same checkpoint, but a rank must never train on a different start), and the
  // ranks' digests of it are compared before each save.
  std::vector<Tensor*> rank_state_;
  std::vector<Tensor*> trainable_;
  std::vector<Tensor*> training_buffers_;
  LossCurve curve_;
  std::optional<TrainLog> log_;  // rank 0's only
  TrainResult result_;
};

TrainingRun::TrainingRun(Captioner& model, const TrainData& data, const TrainOptions& opt)
    : model_(model),
      data_(data),
      opt_(opt),
      ckpt_path_(opt.out_dir + "/checkpoint.h5"),
      from_features_(opt.feature_cache != nullptr),
      dp_(data_parallel(opt.comm)),
      lead_(!dp_ || opt.comm->rank() == 0) {
  fs::create_directories(opt.out_dir);
  if (dp_) sync_.emplace(*opt.comm);
  const int ranks = dp_ ? opt.comm->size() : 1;
  if (opt.batch_size % ranks != 0)
    throw std::invalid_argument("train: the global batch of " + std::to_string(opt.batch_size) +
                                " does not divide among " + std::to_string(ranks) + " ranks");
  prepare_batches();
  build_optimizer();
  if (opt.resume) resume();
  share_start_between_ranks();
  check_feature_cache();
  open_log();
}

// This rank's slice of each global batch, shuffled by (seed, epoch) so that a resumed run sees
// the same batches.
void TrainingRun::prepare_batches() {
  const int ranks = dp_ ? opt_.comm->size() : 1;
  BatcherOptions bo;
  bo.batch_size = opt_.batch_size / ranks;
  bo.shard_index = dp_ ? opt_.comm->rank() : 0;
  bo.shard_count = ranks;
  bo.keep_empty_batches = dp_;  // a rank whose slice failed to load still takes part in the step
  bo.image_size = model_.config().image_size;
  bo.scaling = model_.config().pixel_scaling;
  bo.seed = opt_.seed;
  bo.all_pairs = opt_.all_pairs;
  bo.captions_per_image = opt_.captions_per_image;
  bo.cache_images = opt_.cache_images;
  bo.feature_cache = opt_.feature_cache;
  batcher_.emplace(data_.train, data_.tokenizer, bo);
  steps_per_epoch_ = batcher_->steps_per_epoch();
  if (steps_per_epoch_ == 0)
    throw std::runtime_error("train: " + std::to_string(data_.train.images.size()) +
                             " training images do not fill one batch of " + std::to_string(opt_.batch_size));
}

// Adam over the trainable parameters, with the model on its device (the moments are made there).
void TrainingRun::build_optimizer() {
  model_.to(opt_.device);
  model_.train(true);
  std::shared_ptr<nn::LrSchedule> schedule;
  if (opt_.warmup_steps > 0)
    schedule = std::make_shared<nn::WarmupCosineLr>(
        opt_.learning_rate, opt_.warmup_steps, std::max<int64_t>(opt_.warmup_steps, steps_per_epoch_ * opt_.epochs));
  else
    schedule = std::make_shared<nn::ConstantLr>(opt_.learning_rate);
  optimizer_.emplace(model_.named_parameters(true), schedule);
}

// --resume: the weights, Adam's moments and iteration count, and the position of the checkpoint.
void TrainingRun::resume() {
  if (!fs::exists(ckpt_path_)) throw std::runtime_error("train --resume: no checkpoint at " + ckpt_path_);
  CheckpointContents meta = read_checkpoint_meta(ckpt_path_);
  std::vector<nn::NamedTensor> opt_state = optimizer_->state();
  load_checkpoint_tensors(ckpt_path_, model_state(model_), &opt_state);
  optimizer_->set_iterations(meta.optimizer_iterations);
  start_.epoch = meta.progress.at("epoch").get<int>();
  start_.step = meta.progress.at("step_in_epoch").get<int64_t>();
  global_step_ = meta.progress.at("global_step").get<int64_t>();
  // Positions are counted in global batches, so a run resumes with any number of ranks; only
  // the global batch must stay the same for the steps to mean the same images.
  if (meta.progress.contains("batch_size") && meta.progress.at("batch_size").get<int64_t>() != opt_.batch_size &&
      lead_)
    std::cerr << "warning: resuming with --batch " << opt_.batch_size << " but the run used "
              << meta.progress.at("batch_size").get<int64_t>() << ": the epoch position (step " << start_.step
              << ") now counts batches of the new size\n";
  if (meta.progress.value("seed", opt_.seed) != opt_.seed && lead_)
    std::cerr << "warning: resuming with --seed " << opt_.seed << " but the run used seed "
              << meta.progress.value("seed", opt_.seed) << "\n";
  if (lead_)
    std::cout << "resumed from " << ckpt_path_ << " at epoch " << start_.epoch + 1 << ", step " << start_.step
              << " (global step " << global_step_ << ")\n";
}

void TrainingRun::share_start_between_ranks() {
  for (const nn::NamedTensor& t : model_state(model_)) rank_state_.push_back(t.tensor);
  for (const nn::NamedTensor& t : optimizer_->state()) rank_state_.push_back(t.tensor);
  trainable_ = model_.trainable_parameters();
  collect_training_buffers(model_, training_buffers_);
  if (dp_) sync_->broadcast(rank_state_, 0);
}

// Features cached from other encoder weights than the ones this checkpoint will hold would train
// a decoder that infer cannot reproduce: refuse them (after a resume has loaded the weights).
void TrainingRun::check_feature_cache() const {
  if (!from_features_) return;
  const CaptionerConfig& c = model_.config();
  opt_.feature_cache->check_matches({to_string(c.encoder), c.image_size, to_string(c.pixel_scaling),
                                     model_.grid_cells(), model_.encoder->output_channels(),
                                     model_.encoder->fingerprint()});
}

// The CSV log: on resume, cut back to the checkpoint's step and appended to, so that the file and
// the loss curve cover the whole run.
void TrainingRun::open_log() {
  const std::string log_path = opt_.out_dir + "/train_log.csv";
  bool new_log = !opt_.resume || !fs::exists(log_path);
  if (!new_log && lead_) {
    RestoredLog restored;
    std::string why;
    // A checkpoint at step 0 of an epoch is the one written after the previous epoch's validation.
    if (restore_log(log_path, global_step_, start_.step == 0, restored, why)) {
      write_file_atomically(log_path, restored.text, "train", FileSync::Durable);
      curve_ = std::move(restored.curve);
    } else {
      const std::string kept = unused_old_name(log_path);
      std::cerr << "warning: " << log_path << " is not a training log (" << why
                << "); starting a new one, the old one is kept as " << kept << "\n";
      fs::rename(log_path, kept);
      new_log = true;
    }
  }
  if (lead_) log_.emplace(log_path, new_log);
  if (log_ && new_log) log_->row() << kLogHeader << "\n";
}

EpochProgress TrainingRun::start_epoch(int epoch) {
  EpochProgress progress;
  progress.epoch = epoch;
  progress.first_step = progress.step = epoch == start_.epoch ? start_.step : 0;
  batcher_->start_epoch(epoch, progress.first_step);
  progress.start = std::chrono::steady_clock::now();
  return progress;
}

// Forward, masked loss, backward, optimizer step. Data-parallel, each rank does this on its slice
// of the global batch and the ranks sum what makes it the step one process would take.
StepResult TrainingRun::train_step(const CaptionBatch& batch, const EpochProgress& progress) {
  optimizer_->zero_grad();
  StepResult s;
  Tensor loss;
  s.images = batch.size();
  double local_tokens = 0, global_tokens = 0;  // data-parallel
  if (!dp_) {
    loss = batch_loss(model_, batch, from_features_, opt_.device);
    s.loss = loss.item();
  } else {
    // The loss one process would compute on the global batch is the mean over ALL its real
    // tokens: sum over ranks of each rank's loss sum, over the global token count (not the
    // average of the ranks' means, which would weigh a rank's tokens by its own count). The
    // token counts, loss sums, images and Ctrl-C flags travel in one small reduction before
    // the backward pass: every rank then knows the global count, stops at the same step, and
    // sees a non-finite loss at the same step.
    const bool have = batch.size() > 0;
    local_tokens = have ? static_cast<double>(real_tokens(batch)) : 0.0;
    double local_mean = 0;
    if (have) {
      loss = batch_loss(model_, batch, from_features_, opt_.device);
      local_mean = loss.item();
    }
    const bool stop_here = opt_.stop_requested && opt_.stop_requested->load();
    std::vector<double> totals{local_tokens, local_mean * local_tokens, stop_here ? 1.0 : 0.0,
                               static_cast<double>(batch.size())};
    sync_->all_reduce_host(totals);
    // Every image of the global batch unreadable: skipped by every rank, as one process
    // skips such a batch.
    if (totals[3] == 0) {
      s.skipped = true;
      return s;
    }
    global_tokens = totals[0];
    s.loss = global_tokens > 0 ? totals[1] / global_tokens : 0.0;
    s.images = static_cast<int64_t>(totals[3]);
    s.stop = totals[2] > 0;
  }
  // Checked before backward(): a NaN never reaches the weights.
  if (!std::isfinite(s.loss)) {
    std::ostringstream msg;
    msg << "training stopped: the loss became " << s.loss << " at global step " << global_step_ + 1 << " (epoch "
        << progress.epoch + 1 << ", step " << progress.step + 1 << "); the last good checkpoint is "
        << (result_.checkpoint.empty() ? (opt_.resume ? ckpt_path_ : std::string("(none written yet)"))
                                       : result_.checkpoint)
        << ". Try a lower --lr or --clip-norm.";
    throw NonFiniteLoss(msg.str());
  }
  if (!dp_) {
    loss.backward();
  } else {
    // Each rank differentiates (its loss sum) / (global count) = local mean * local count /
    // global count; the SUM of these gradients over the ranks is then the gradient of the
    // global mean. One flat all-reduce carries every gradient (and the averaged BatchNorm
    // statistics); a rank with nothing to learn from this step contributes zeros.
    if (loss.defined() && local_tokens > 0 && global_tokens > 0)
      mul_scalar(loss, local_tokens / global_tokens).backward();
    sync_->all_reduce_gradients(trainable_, training_buffers_);
  }
  // Clipping after the all-reduce: the norm is the global gradient's, the same on each rank.
  if (opt_.clip_norm > 0) nn::clip_grad_norm(trainable_, opt_.clip_norm);
  s.learning_rate = optimizer_->current_lr();
  optimizer_->step();
  fault_point("step");
  return s;
}

// Counts the step, and writes its log row, its point of the loss curve and the progress bar.
void TrainingRun::record_step(const StepResult& s, EpochProgress& progress) {
  ++progress.step;
  ++global_step_;
  result_.step_losses.push_back(s.loss);
  progress.loss_sum += s.loss;
  ++progress.losses;
  progress.images += s.images;

  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - progress.start).count();
  const double ips = progress.images / std::max(elapsed, 1e-9);
  if (log_)
    log_->row() << global_step_ << "," << progress.epoch + 1 << "," << progress.step << "," << s.loss << ","
                << s.learning_rate << "," << ips << ",\n";
  curve_.train.push_back(static_cast<float>(s.loss));
  if (opt_.progress_bar && lead_) {
    const int width = 24;
    const int filled = static_cast<int>(width * progress.step / steps_per_epoch_);
    const double eta = (steps_per_epoch_ - progress.step) * elapsed /
                       std::max<int64_t>(1, progress.step - progress.first_step);
    std::cout << "\repoch " << progress.epoch + 1 << "/" << opt_.epochs << " [" << std::string(filled, '#')
              << std::string(width - filled, '.') << "] step " << progress.step << "/" << steps_per_epoch_
              << " | " << std::fixed << std::setprecision(1) << ips << " img/s | loss " << std::setprecision(4)
              << progress.loss_sum / progress.losses << " | ETA " << format_duration(eta) << "   " << std::flush;
  }
}

// Ctrl-C (or SIGTERM): save where the run stands and return; --resume continues from there.
TrainResult TrainingRun::interrupt(Position at) {
  checkpoint(at);
  if (lead_) std::cout << "\ninterrupted: checkpoint saved to " << ckpt_path_ << " (continue with --resume)\n";
  result_.interrupted = true;
  result_.global_step = global_step_;
  if (dp_) result_.communication_seconds = sync_->communication_seconds();
  return std::move(result_);
}

// The validation loss (no gradients), printed with the epoch's training loss and logged.
void TrainingRun::validate(const EpochProgress& progress) {
  if (data_.val.images.empty()) return;
  fault_point("validation");
  // Data-parallel: every rank evaluates its slice of each validation batch (evaluate_loss).
  const double val_loss = evaluate_loss(model_, data_.val, data_.tokenizer, opt_.batch_size, opt_.device,
                                        opt_.feature_cache, dp_ ? opt_.comm : nullptr);
  result_.last_val_loss = val_loss;
  if (lead_)
    std::cout << "epoch " << progress.epoch + 1 << ": train loss " << std::setprecision(4) << progress.mean_loss()
              << ", validation loss " << val_loss << "\n";
  if (log_)
    log_->row() << global_step_ << "," << progress.epoch + 1 << "," << progress.step << ",,,," << val_loss << "\n";
  curve_.add_validation(static_cast<float>(val_loss));
}

// The first few validation images captioned greedily, next to a reference (rank 0, from images
// only: a feature cache has no pixels).
void TrainingRun::print_sample_captions() {
  if (data_.val.images.empty() || opt_.sample_captions <= 0 || from_features_ || !lead_) return;
  model_.eval();
  Generator gen(opt_.seed);
  const DecodeOptions dopt = decode_options_for(data_.tokenizer);
  for (int i = 0; i < std::min<int>(opt_.sample_captions, data_.val.images.size()); ++i) {
    const CaptionedImage& im = data_.val.images[i];
    try {
      const ImageCaption c = caption_image(model_, data_.tokenizer, read_jpeg(im.path), dopt, gen);
      std::cout << "  " << im.file_name << ": \"" << c.text << "\"  (reference: \"" << im.captions[0] << "\")\n";
    } catch (const std::exception& e) {
      std::cout << "  " << im.file_name << ": could not caption: " << e.what() << "\n";
    }
  }
  model_.train(true);
}

nlohmann::json TrainingRun::progress_json(Position at) const {
  return nlohmann::json{{"epoch", at.epoch},
                        {"step_in_epoch", at.step},
                        {"global_step", global_step_},
                        {"seed", opt_.seed},
                        {"steps_per_epoch", steps_per_epoch_},
                        {"batch_size", opt_.batch_size}};  // global: steps count batches of this size
}

// Model, optimizer, tokenizer and `at` saved atomically, after the log rows up to this step.
void TrainingRun::checkpoint(Position at) {
  if (dp_) {
    // Never save one rank's state when the ranks have drifted apart (docs/distributed.md).
    sync_->check_ranks_agree(rank_state_, {global_step_, optimizer_->iterations()},
                             "at global step " + std::to_string(global_step_));
  }
  if (lead_) {
    log_->sync();
    save_training_checkpoint(ckpt_path_, model_, &*optimizer_, data_.tokenizer, progress_json(at));
  }
  // The other ranks wait for the save: when any rank returns (interrupted, done) or a kill
  // stops the job, the checkpoint on disk is the one of this step.
  if (dp_) sync_->barrier();
  result_.checkpoint = ckpt_path_;
}

TrainResult TrainingRun::finish() {
  // Each rank read its own images: each reports its own unreadable ones (rank 0 on stdout, the
  // others on stderr, which tools/train leaves open on every rank).
  if (batcher_->bad_images() > 0)
    (lead_ ? std::cout : std::cerr) << (dp_ ? "rank " + std::to_string(opt_.comm->rank()) + ": " : std::string())
                                    << "skipped " << batcher_->bad_images()
                                    << " unreadable image(s) during training; first: "
                                    << batcher_->bad_image_messages().front() << "\n";
  plot_loss_curve();
  result_.global_step = global_step_;
  if (dp_) result_.communication_seconds = sync_->communication_seconds();
  return std::move(result_);
}

}  // namespace

TrainResult train_captioner(Captioner& model, const TrainData& data, const TrainOptions& opt) {
  // Prepare: the batches, the model on its device and its optimizer (resumed from the checkpoint
  // with --resume), every rank at the same start, the log.
  TrainingRun run(model, data, opt);
  for (int epoch = run.start().epoch; epoch < opt.epochs; ++epoch) {
    EpochProgress progress = run.start_epoch(epoch);
    CaptionBatch batch;
    while (run.next_batch(batch)) {
      if (run.step_limit_reached()) break;
      const StepResult s = run.train_step(batch, progress);  // forward, masked loss, backward, Adam
      if (s.skipped) continue;
      run.record_step(s, progress);  // log row, loss curve, progress bar
      if (run.checkpoint_due()) run.checkpoint({epoch, progress.step});
      if (run.stop_requested(s)) return run.interrupt({epoch, progress.step});
    }
    run.end_progress_bar();
    // A run cut short by max_steps mid-epoch saves where it stopped, without validating.
    if (run.step_limit_reached() && progress.step < run.steps_per_epoch()) {
      run.checkpoint({epoch, progress.step});
      break;
    }
    // End of epoch: validation loss, sample captions, checkpoint, loss curve.
    run.validate(progress);
    run.print_sample_captions();
    run.checkpoint({epoch + 1, 0});
    run.plot_loss_curve();
  }
  return run.finish();  // unreadable images reported, the final loss curve
}

}  // namespace glimpse::models
