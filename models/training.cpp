// The training loop (see training.h).
#include "models/training.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "io/atomic_file.h"
#include "io/batches.h"
#include "io/checkpoint.h"
#include "io/plot.h"
#include "io/image.h"
#include "models/decoding.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/autograd.h"

namespace glimpse::models {

namespace fs = std::filesystem;

namespace {

PixelScaling scaling_of(const CaptionerConfig& c) {
  if (c.pixel_scaling == "unit") return PixelScaling::Unit;
  if (c.pixel_scaling == "inception") return PixelScaling::Inception;
  throw std::invalid_argument("unknown pixel_scaling '" + c.pixel_scaling + "'");
}

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
    val_by_step.resize(train.size(), std::nanf(""));
    val_by_step.back() = loss;
  }
};

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

LoadedModel load_captioner(const std::string& path, Device device) {
  CheckpointContents meta = read_checkpoint_meta(path);
  LoadedModel out;
  CaptionerConfig config = CaptionerConfig::from_json(meta.model_config);
  out.model = std::make_unique<Captioner>(config, 0);
  load_checkpoint_tensors(path, model_state(*out.model));
  out.model->to(device);
  out.model->eval();
  // A loaded model only runs inference: fold each BatchNorm into its conv once (CPU; the folded
  // path's speed-up was measured there), so every image costs one conv pass per unit.
  if (device == Device::CPU) out.model->encoder->fold_batch_norm();
  const int length = meta.model_config.value("sequence_length", static_cast<int>(config.max_caption_len));
  if (meta.vocabulary.empty())
    throw std::runtime_error("checkpoint " + path + ": no tokenizer vocabulary");
  out.tokenizer = std::make_unique<Tokenizer>(meta.vocabulary, length);
  out.progress = meta.progress;
  return out;
}

double evaluate_loss(Captioner& model, const CaptionDataset& data, const Tokenizer& tokenizer,
                     int batch_size, Device device, const std::shared_ptr<FeatureCache>& cache) {
  if (data.images.empty()) return 0;
  NoGradGuard no_grad;
  const bool was_training = model.training();
  model.eval();
  BatcherOptions bo;
  bo.batch_size = batch_size;
  bo.image_size = model.config().image_size;
  bo.scaling = scaling_of(model.config());
  bo.drop_remainder = false;
  bo.feature_cache = cache;
  CaptionBatcher batcher(data, tokenizer, bo);
  batcher.start_epoch(0);
  CaptionBatch batch;
  double total = 0;
  int64_t n = 0;
  while (batcher.next(batch)) {
    total += batch_loss(model, batch, cache != nullptr, device).item() * batch.size();
    n += batch.size();
  }
  model.train(was_training);
  return n > 0 ? total / n : 0;
}

TrainResult train_captioner(Captioner& model, const TrainData& data, const TrainOptions& opt) {
  fs::create_directories(opt.out_dir);
  const std::string ckpt_path = opt.out_dir + "/checkpoint.h5";
  const bool from_features = opt.feature_cache != nullptr;

  BatcherOptions bo;
  bo.batch_size = opt.batch_size;
  bo.image_size = model.config().image_size;
  bo.scaling = scaling_of(model.config());
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
    if (meta.progress.value("seed", opt.seed) != opt.seed)
      std::cerr << "warning: resuming with --seed " << opt.seed << " but the run used seed "
                << meta.progress.value("seed", opt.seed) << "\n";
    std::cout << "resumed from " << ckpt_path << " at epoch " << start_epoch + 1 << ", step "
              << start_step << " (global step " << global_step << ")\n";
  }
  // Features cached from other encoder weights than the ones this checkpoint will hold would train
  // a decoder that infer cannot reproduce: refuse them (after a resume has loaded the weights).
  if (from_features)
    opt.feature_cache->check_matches({model.config().encoder, model.config().image_size,
                                      model.config().pixel_scaling, model.grid_cells(),
                                      model.encoder->output_channels(), model.encoder->fingerprint()});

  // CSV log: on resume, cut back to the checkpoint's step and appended to, so that the file and
  // the loss curve cover the whole run.
  const std::string log_path = opt.out_dir + "/train_log.csv";
  LossCurve curve;
  bool new_log = !opt.resume || !fs::exists(log_path);
  if (!new_log) {
    RestoredLog restored;
    std::string why;
    // A checkpoint at step 0 of an epoch is the one written after the previous epoch's validation.
    if (restore_log(log_path, global_step, start_step == 0, restored, why)) {
      write_file_atomically(log_path, restored.text, "train");
      curve = std::move(restored.curve);
    } else {
      std::cerr << "warning: " << log_path << " is not a training log (" << why
                << "); starting a new one, the old one is kept as " << log_path << ".old\n";
      fs::rename(log_path, log_path + ".old");
      new_log = true;
    }
  }
  std::ofstream log(log_path, new_log ? std::ios::trunc : std::ios::app);
  if (!log) throw std::runtime_error("train: cannot write " + log_path);
  if (new_log) log << kLogHeader << "\n";

  TrainResult result;
  auto progress_json = [&](int epoch, int64_t step) {
    return nlohmann::json{{"epoch", epoch},
                          {"step_in_epoch", step},
                          {"global_step", global_step},
                          {"seed", opt.seed},
                          {"steps_per_epoch", steps_per_epoch}};
  };
  auto checkpoint = [&](int epoch, int64_t step) {
    save_training_checkpoint(ckpt_path, model, &optimizer, data.tokenizer, progress_json(epoch, step));
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
      Tensor loss = batch_loss(model, batch, from_features, opt.device);
      const double value = loss.item();
      if (!std::isfinite(value)) {
        std::ostringstream msg;
        msg << "training stopped: the loss became " << value << " at global step " << global_step + 1
            << " (epoch " << epoch + 1 << ", step " << step + 1 << "); the last good checkpoint is "
            << (result.checkpoint.empty() ? (opt.resume ? ckpt_path : std::string("(none written yet)"))
                                          : result.checkpoint)
            << ". Try a lower --lr or --clip-norm.";
        throw NonFiniteLoss(msg.str());
      }
      loss.backward();
      if (opt.clip_norm > 0) nn::clip_grad_norm(model.trainable_parameters(), opt.clip_norm);
      const double lr = optimizer.current_lr();
      optimizer.step();
      ++step;
      ++global_step;
      result.step_losses.push_back(value);
      running += value;
      ++running_n;
      images_seen += batch.size();

      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
      const double ips = images_seen / std::max(elapsed, 1e-9);
      log << global_step << "," << epoch + 1 << "," << step << "," << value << "," << lr << ","
          << ips << ",\n";
      curve.train.push_back(static_cast<float>(value));
      if (opt.progress_bar) {
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
      if (opt.stop_requested && opt.stop_requested->load()) {
        checkpoint(epoch, step);
        std::cout << "\ninterrupted: checkpoint saved to " << ckpt_path
                  << " (continue with --resume)\n";
        result.interrupted = true;
        result.global_step = global_step;
        return result;
      }
    }
    if (opt.progress_bar) std::cout << "\n";
    if (opt.max_steps >= 0 && static_cast<int64_t>(result.step_losses.size()) >= opt.max_steps &&
        step < steps_per_epoch) {
      checkpoint(epoch, step);
      break;
    }
    // End of epoch: validation loss, sample captions, checkpoint.
    double val_loss = 0;
    if (!data.val.images.empty()) {
      val_loss = evaluate_loss(model, data.val, data.tokenizer, opt.batch_size, opt.device,
                               opt.feature_cache);
      result.last_val_loss = val_loss;
      std::cout << "epoch " << epoch + 1 << ": train loss " << std::setprecision(4)
                << (running_n ? running / running_n : 0) << ", validation loss " << val_loss << "\n";
      log << global_step << "," << epoch + 1 << "," << step << ",,,," << val_loss << "\n";
      curve.add_validation(static_cast<float>(val_loss));
      if (opt.sample_captions > 0 && !from_features) {
        NoGradGuard no_grad;
        model.eval();
        Generator gen(opt.seed);
        DecodeOptions dopt;
        dopt.start_id = data.tokenizer.id_of(kStartMarker);
        dopt.end_id = data.tokenizer.id_of(kEndMarker);
        dopt.max_length = data.tokenizer.sequence_length();
        for (int i = 0; i < std::min<int>(opt.sample_captions, data.val.images.size()); ++i) {
          const CaptionedImage& im = data.val.images[i];
          try {
            std::vector<float> px = load_image_for_model(im.path, model.config().image_size,
                                                         scaling_of(model.config()));
            const int64_t s = model.config().image_size;
            Tensor features = model.encode(Tensor::from_vector(px, {1, s, s, 3}).to(opt.device));
            DecodedCaption c = decode_caption(model, features, dopt, gen);
            std::cout << "  " << im.file_name << ": \"" << data.tokenizer.decode(c.tokens, true)
                      << "\"  (reference: \"" << im.captions[0] << "\")\n";
          } catch (const std::exception& e) {
            std::cout << "  " << im.file_name << ": could not caption: " << e.what() << "\n";
          }
        }
        model.train(true);
      }
    }
    checkpoint(epoch + 1, 0);
    log.flush();
    write_loss_curve(opt.out_dir, curve);
  }
  if (batcher.bad_images() > 0)
    std::cout << "skipped " << batcher.bad_images() << " unreadable image(s) during training; first: "
              << batcher.bad_image_messages().front() << "\n";
  write_loss_curve(opt.out_dir, curve);
  result.global_step = global_step;
  return result;
}

}  // namespace glimpse::models
