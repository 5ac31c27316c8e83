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
  Tensor logits = model.decode(features, batch.input_ids.to(device));
  return nn::masked_sparse_categorical_crossentropy(logits, batch.target_ids.to(device));
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

// On --resume: the log's rows up to the checkpoint's global step, as text, and the losses they
// hold for the curve. Rows past that step were written after the checkpoint by a run that then
// died without saving again (a crash, a kill); the resumed run computes those steps afresh, so
// they are dropped rather than listed twice. So is a validation row at the checkpoint's own step
// when the checkpoint is not an end-of-epoch one (`validated` false): it was saved on the
// epoch's last step before the validation, which the resumed run then repeats. Returns false (and
// changes nothing) when the file is not a log this loop wrote.
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

TrainResult train_captioner(Captioner& model, const TrainData& data, const TrainOptions& opt) {
  fs::create_directories(opt.out_dir);
  const std::string ckpt_path = opt.out_dir + "/checkpoint.h5";
  const bool from_features = opt.feature_cache != nullptr;
  // Data-parallel: `lead` (rank 0) alone prints, logs, plots and saves; every rank trains.
  const bool dp = data_parallel(opt.comm);
  std::optional<dist::DataParallel> sync;
  if (dp) sync.emplace(*opt.comm);
  const int ranks = dp ? opt.comm->size() : 1;
  const bool lead = !dp || opt.comm->rank() == 0;
  if (opt.batch_size % ranks != 0)
    throw std::invalid_argument("train: the global batch of " + std::to_string(opt.batch_size) +
                                " does not divide among " + std::to_string(ranks) + " ranks");

  BatcherOptions bo;
  bo.batch_size = opt.batch_size / ranks;
  bo.shard_index = dp ? opt.comm->rank() : 0;
  bo.shard_count = ranks;
  bo.keep_empty_batches = dp;  // a rank whose slice failed to load still takes part in the step
  bo.image_size = model.config().image_size;
  bo.scaling = model.config().pixel_scaling;
  bo.seed = opt.seed;
  bo.all_pairs = opt.all_pairs;
  bo.captions_per_image = opt.captions_per_image;
  bo.cache_images = opt.cache_images;
  bo.feature_cache = opt.feature_cache;
  CaptionBatcher batcher(data.train, data.tokenizer, bo);
  const int64_t steps_per_epoch = batcher.steps_per_epoch();
  if (steps_per_epoch == 0)
    throw std::runtime_error("train: " + std::to_string(data.train.images.size()) +
                             " training images do not fill one batch of " +
                             std::to_string(opt.batch_size));

  model.to(opt.device);
  model.train(true);
  std::shared_ptr<nn::LrSchedule> schedule;
  if (opt.warmup_steps > 0)
    schedule = std::make_shared<nn::WarmupCosineLr>(opt.learning_rate, opt.warmup_steps,
                                                    std::max<int64_t>(opt.warmup_steps, steps_per_epoch * opt.epochs));
  else
    schedule = std::make_shared<nn::ConstantLr>(opt.learning_rate);
  nn::Adam optimizer(model.named_parameters(true), schedule);

  int start_epoch = 0;
  int64_t start_step = 0, global_step = 0;
  if (opt.resume) {
    if (!fs::exists(ckpt_path))
      throw std::runtime_error("train --resume: no checkpoint at " + ckpt_path);
    CheckpointContents meta = read_checkpoint_meta(ckpt_path);
    std::vector<nn::NamedTensor> opt_state = optimizer.state();
    load_checkpoint_tensors(ckpt_path, model_state(model), &opt_state);
    optimizer.set_iterations(meta.optimizer_iterations);
    start_epoch = meta.progress.at("epoch").get<int>();
    start_step = meta.progress.at("step_in_epoch").get<int64_t>();
    global_step = meta.progress.at("global_step").get<int64_t>();
    // Positions are counted in global batches, so a run resumes with any number of ranks; only
    // the global batch must stay the same for the steps to mean the same images.
    if (meta.progress.contains("batch_size") && meta.progress.at("batch_size").get<int64_t>() != opt.batch_size &&
        lead)
      std::cerr << "warning: resuming with --batch " << opt.batch_size << " but the run used "
                << meta.progress.at("batch_size").get<int64_t>()
                << ": the epoch position (step " << start_step << ") now counts batches of the new size\n";
    if (meta.progress.value("seed", opt.seed) != opt.seed && lead)
      std::cerr << "warning: resuming with --seed " << opt.seed << " but the run used seed "
                << meta.progress.value("seed", opt.seed) << "\n";
    if (lead)
      std::cout << "resumed from " << ckpt_path << " at epoch " << start_epoch + 1 << ", step "
                << start_step << " (global step " << global_step << ")\n";
  }
  // Everything a rank's copy of the run consists of: the weights, the buffers and the optimizer's
  // moments. Rank 0's is broadcast to every rank at the start (ranks built the model from the same
  // seed and read the same checkpoint, but a rank must never train on a different start), and the
  // ranks' digests of it are compared before each save.
  std::vector<Tensor*> rank_state;
  for (const nn::NamedTensor& t : model_state(model)) rank_state.push_back(t.tensor);
  std::vector<nn::NamedTensor> optimizer_state = optimizer.state();
  for (const nn::NamedTensor& t : optimizer_state) rank_state.push_back(t.tensor);
  const std::vector<Tensor*> trainable = model.trainable_parameters();
  std::vector<Tensor*> training_buffers;
  collect_training_buffers(model, training_buffers);
  if (dp) sync->broadcast(rank_state, 0);
  // Features cached from other encoder weights than the ones this checkpoint will hold would train
  // a decoder that infer cannot reproduce: refuse them (after a resume has loaded the weights).
  if (from_features)
    opt.feature_cache->check_matches({to_string(model.config().encoder), model.config().image_size,
                                      to_string(model.config().pixel_scaling), model.grid_cells(),
                                      model.encoder->output_channels(), model.encoder->fingerprint()});

  // CSV log: on resume, cut back to the checkpoint's step and appended to, so that the file and
  // the loss curve cover the whole run.
  const std::string log_path = opt.out_dir + "/train_log.csv";
  LossCurve curve;
  bool new_log = !opt.resume || !fs::exists(log_path);
  if (!new_log && lead) {
    RestoredLog restored;
    std::string why;
    // A checkpoint at step 0 of an epoch is the one written after the previous epoch's validation.
    if (restore_log(log_path, global_step, start_step == 0, restored, why)) {
      write_file_atomically(log_path, restored.text, "train", FileSync::Durable);
      curve = std::move(restored.curve);
    } else {
      const std::string kept = unused_old_name(log_path);
      std::cerr << "warning: " << log_path << " is not a training log (" << why
                << "); starting a new one, the old one is kept as " << kept << "\n";
      fs::rename(log_path, kept);
      new_log = true;
    }
  }
  std::optional<TrainLog> log;  // rank 0's only
  if (lead) log.emplace(log_path, new_log);
  if (log && new_log) log->row() << kLogHeader << "\n";

  TrainResult result;
  auto progress_json = [&](int epoch, int64_t step) {
    return nlohmann::json{{"epoch", epoch},
                          {"step_in_epoch", step},
                          {"global_step", global_step},
                          {"seed", opt.seed},
                          {"steps_per_epoch", steps_per_epoch},
                          {"batch_size", opt.batch_size}};  // global: steps count batches of this size
  };
  auto checkpoint = [&](int epoch, int64_t step) {
    if (dp) {
      // Never save one rank's state when the ranks have drifted apart (docs/distributed.md).
      sync->check_ranks_agree(rank_state, {global_step, optimizer.iterations()},
                              "at global step " + std::to_string(global_step));
    }
    if (lead) {
      log->sync();
      save_training_checkpoint(ckpt_path, model, &optimizer, data.tokenizer, progress_json(epoch, step));
    }
    // The other ranks wait for the save: when any rank returns (interrupted, done) or a kill
    // stops the job, the checkpoint on disk is the one of this step.
    if (dp) sync->barrier();
    result.checkpoint = ckpt_path;
  };

  for (int epoch = start_epoch; epoch < opt.epochs; ++epoch) {
    const int64_t first_step = epoch == start_epoch ? start_step : 0;
    batcher.start_epoch(epoch, first_step);
    auto epoch_start = std::chrono::steady_clock::now();
    double running = 0;
    int64_t running_n = 0, images_seen = 0;
    CaptionBatch batch;
    int64_t step = first_step;
    while (batcher.next(batch)) {
      if (opt.max_steps >= 0 && static_cast<int64_t>(result.step_losses.size()) >= opt.max_steps) break;
      optimizer.zero_grad();
      Tensor loss;
      double value = 0;
      int64_t batch_images = batch.size();
      bool stop_now = false;
      double local_tokens = 0, global_tokens = 0;  // data-parallel
      if (!dp) {
        loss = batch_loss(model, batch, from_features, opt.device);
        value = loss.item();
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
          loss = batch_loss(model, batch, from_features, opt.device);
          local_mean = loss.item();
        }
        const bool stop_here = opt.stop_requested && opt.stop_requested->load();
        std::vector<double> totals{local_tokens, local_mean * local_tokens, stop_here ? 1.0 : 0.0,
                                   static_cast<double>(batch.size())};
        sync->all_reduce_host(totals);
        // Every image of the global batch unreadable: skipped by every rank, as one process
        // skips such a batch.
        if (totals[3] == 0) continue;
        global_tokens = totals[0];
        value = global_tokens > 0 ? totals[1] / global_tokens : 0.0;
        batch_images = static_cast<int64_t>(totals[3]);
        stop_now = totals[2] > 0;
      }
      if (!std::isfinite(value)) {
        std::ostringstream msg;
        msg << "training stopped: the loss became " << value << " at global step " << global_step + 1
            << " (epoch " << epoch + 1 << ", step " << step + 1 << "); the last good checkpoint is "
            << (result.checkpoint.empty() ? (opt.resume ? ckpt_path : std::string("(none written yet)"))
                                          : result.checkpoint)
            << ". Try a lower --lr or --clip-norm.";
        throw NonFiniteLoss(msg.str());
      }
      if (!dp) {
        loss.backward();
      } else {
        // Each rank differentiates (its loss sum) / (global count) = local mean * local count /
        // global count; the SUM of these gradients over the ranks is then the gradient of the
        // global mean. One flat all-reduce carries every gradient (and the averaged BatchNorm
        // statistics); a rank with nothing to learn from this step contributes zeros.
        if (loss.defined() && local_tokens > 0 && global_tokens > 0)
          mul_scalar(loss, local_tokens / global_tokens).backward();
        sync->all_reduce_gradients(trainable, training_buffers);
      }
      // Clipping after the all-reduce: the norm is the global gradient's, the same on each rank.
      if (opt.clip_norm > 0) nn::clip_grad_norm(trainable, opt.clip_norm);
      const double lr = optimizer.current_lr();
      optimizer.step();
      fault_point("step");
      ++step;
      ++global_step;
      result.step_losses.push_back(value);
      running += value;
      ++running_n;
      images_seen += batch_images;  // global: img/s is the whole job's throughput

      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
      const double ips = images_seen / std::max(elapsed, 1e-9);
      if (log)
        log->row() << global_step << "," << epoch + 1 << "," << step << "," << value << "," << lr << ","
                   << ips << ",\n";
      curve.train.push_back(static_cast<float>(value));
      if (opt.progress_bar && lead) {
        const int width = 24;
        const int filled = static_cast<int>(width * step / steps_per_epoch);
        const double eta = (steps_per_epoch - step) * elapsed / std::max<int64_t>(1, step - first_step);
        std::cout << "\repoch " << epoch + 1 << "/" << opt.epochs << " ["
                  << std::string(filled, '#') << std::string(width - filled, '.') << "] step "
                  << step << "/" << steps_per_epoch << " | " << std::fixed << std::setprecision(1)
                  << ips << " img/s | loss " << std::setprecision(4) << running / running_n
                  << " | ETA " << format_duration(eta) << "   " << std::flush;
      }
      if (opt.checkpoint_every > 0 && global_step % opt.checkpoint_every == 0) checkpoint(epoch, step);
      if (!dp) stop_now = opt.stop_requested && opt.stop_requested->load();
      if (stop_now) {
        checkpoint(epoch, step);
        if (lead)
          std::cout << "\ninterrupted: checkpoint saved to " << ckpt_path << " (continue with --resume)\n";
        result.interrupted = true;
        result.global_step = global_step;
        if (dp) result.communication_seconds = sync->communication_seconds();
        return result;
      }
    }
    if (opt.progress_bar && lead) std::cout << "\n";
    if (opt.max_steps >= 0 && static_cast<int64_t>(result.step_losses.size()) >= opt.max_steps &&
        step < steps_per_epoch) {
      checkpoint(epoch, step);
      break;
    }
    // End of epoch: validation loss, sample captions, checkpoint.
    double val_loss = 0;
    if (!data.val.images.empty()) {
      fault_point("validation");
      // Data-parallel: every rank evaluates its slice of each validation batch (evaluate_loss).
      val_loss = evaluate_loss(model, data.val, data.tokenizer, opt.batch_size, opt.device,
                               opt.feature_cache, dp ? opt.comm : nullptr);
      result.last_val_loss = val_loss;
      if (lead)
        std::cout << "epoch " << epoch + 1 << ": train loss " << std::setprecision(4)
                  << (running_n ? running / running_n : 0) << ", validation loss " << val_loss << "\n";
      if (log) log->row() << global_step << "," << epoch + 1 << "," << step << ",,,," << val_loss << "\n";
      curve.add_validation(static_cast<float>(val_loss));
      if (opt.sample_captions > 0 && !from_features && lead) {
        model.eval();
        Generator gen(opt.seed);
        const DecodeOptions dopt = decode_options_for(data.tokenizer);
        for (int i = 0; i < std::min<int>(opt.sample_captions, data.val.images.size()); ++i) {
          const CaptionedImage& im = data.val.images[i];
          try {
            const ImageCaption c = caption_image(model, data.tokenizer, read_jpeg(im.path), dopt, gen);
            std::cout << "  " << im.file_name << ": \"" << c.text << "\"  (reference: \"" << im.captions[0]
                      << "\")\n";
          } catch (const std::exception& e) {
            std::cout << "  " << im.file_name << ": could not caption: " << e.what() << "\n";
          }
        }
        model.train(true);
      }
    }
    checkpoint(epoch + 1, 0);
    if (lead) write_loss_curve(opt.out_dir, curve);
  }
  // Each rank read its own images: each reports its own unreadable ones (rank 0 on stdout, the
  // others on stderr, which tools/train leaves open on every rank).
  if (batcher.bad_images() > 0)
    (lead ? std::cout : std::cerr) << (dp ? "rank " + std::to_string(opt.comm->rank()) + ": " : std::string())
                                   << "skipped " << batcher.bad_images()
                                   << " unreadable image(s) during training; first: "
                                   << batcher.bad_image_messages().front() << "\n";
  if (lead) write_loss_curve(opt.out_dir, curve);
  result.global_step = global_step;
  if (dp) result.communication_seconds = sync->communication_seconds();
  return result;
}

}  // namespace glimpse::models
