// tools/train: trains the captioner on the embedded "shapes" dataset or on a COCO-format
// directory, with checkpoints, resume and a loss log. All the work is in models/training.cpp.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli.h"
#include "dist/communicator.h"
#include "io/batches.h"
#include "io/captions.h"
#include "io/checkpoint.h"
#include "io/shapes_dataset.h"
#include "models/keras_import.h"
#include "models/training.h"
#include "tensor/parallel.h"
#include "tensor/profiler.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {
// SIGINT (Ctrl-C) and SIGTERM (docker stop, schedulers, kill) both ask the training loop to save a
// checkpoint and stop after the current step; the exit status then names the signal (130, 143).
std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");
void on_interrupt(int signal_number) {
  if (g_stop.load()) std::_Exit(cli::exit_status_for_signal(signal_number));  // a second signal quits at once
  g_signal.store(signal_number);
  g_stop.store(true);
}

// The resume checkpoint's metadata and config, read and checked before any long work.
models::CheckpointModel read_resume_point(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error("train --resume: no checkpoint at " + path);
  return models::read_checkpoint_model(path);
}

}  // namespace

int main(int argc, char** argv) {
  cli::use_passive_openmp_threads(argv);
  cli::Flags flags("train", "[options]   (train a captioner; see README.md)");
  flags.option("data", "shapes", "'shapes' (generate the embedded dataset) or a COCO-format directory");
  flags.option("data-dir", "data/shapes", "where the shapes dataset is generated");
  flags.option("out", "runs/shapes", "output directory: checkpoint.h5, train_log.csv, loss_curve.png");
  flags.option("encoder", "", "tiny | inception_resnet_v2 (default: tiny for shapes, else inception_resnet_v2)");
  flags.option("keras-weights", "", "Keras ImageNet weights (.h5) for inception_resnet_v2");
  flags.flag("fine-tune-encoder", "train the encoder too (default: frozen for inception_resnet_v2)");
  flags.flag("freeze-encoder", "keep the encoder's weights and BatchNorm statistics fixed (default for inception_resnet_v2)");
  flags.option("epochs", "", "epochs (default: 12 for shapes, 1 otherwise)");
  flags.option("batch", "32", "batch size; with several ranks the GLOBAL batch, divided among them");
  flags.option("lr", "0.001", "Adam learning rate");
  flags.option("clip-norm", "0", "clip gradients to this global norm (0 = off)");
  flags.option("warmup", "0", "warmup steps before cosine decay (0 = constant learning rate)");
  flags.flag("resume", "continue from OUT/checkpoint.h5");
  flags.option("checkpoint-every", "0", "also checkpoint every N steps (0 = each epoch only)");
  flags.option("feature-cache", "", "HDF5 features of the frozen encoder (build with tools/cache_features, same --keras-weights)");
  flags.option("device", "cpu", "cpu | cuda");
  flags.option("dist", "auto", "none | mpi | nccl | auto: data-parallel training over the ranks of mpirun "
               "(auto: none unless launched by mpirun, then nccl with --device cuda where built, else mpi)");
  flags.option("threads", "0", "CPU threads (0 = all cores)");
  flags.option("seed", "1", "random seed (weights, shuffling)");
  flags.option("vocab-size", "", "tokenizer vocabulary size incl. padding and [UNK] (default: 64 shapes, 20000 COCO)");
  flags.option("max-len", "", "caption length in tokens (default: 24 shapes, 64 COCO)");
  flags.option("captions-per-image", "",
               "captions of each image per step, the encoder running once for all (default: 5 shapes, 1 COCO)");
  flags.option("units", "", "decoder width: GRU units = attention width (default: 128 shapes, 512 COCO)");
  flags.option("decoder", "gru", "gru (the notebook's) | transformer (masked self-attention + cross-attention)");
  flags.option("input-feeding", "", "on | off: the GRU's input at each step includes the previous step's attention context (default: off, the notebook's decoder)");
  flags.option("layers", "2", "transformer decoder layers");
  flags.option("heads", "4", "transformer attention heads (must divide --units)");
  flags.option("image-size", "", "input image size (default: 128 tiny, 299 inception_resnet_v2)");
  flags.option("train-images", "6000", "shapes: training images to generate");
  flags.option("max-steps", "-1", "stop after this many steps of this run, resumed or not (smoke tests)");
  flags.flag("all-pairs", "train on every (image, caption) pair each epoch");
  flags.option("trace", "", "write a Chrome/Perfetto trace (JSON, ui.perfetto.dev) of step --trace-step of this run to this file");
  flags.option("trace-step", "2", "the step of this run that --trace records (2: the first after a warm-up step)");
  flags.option("pixel-scaling", "inception", "inception (x/127.5-1) | unit (x/255, the notebook's)");
  flags.also_exits("; " + std::to_string(cli::exit_status_for_signal(SIGINT)) + " / " +
                   std::to_string(cli::exit_status_for_signal(SIGTERM)) +
                   " interrupted by SIGINT / SIGTERM (a checkpoint is saved; continue with --resume)");
  std::unique_ptr<dist::Communicator> comm;  // outlives run_tool: a failed rank must end the others
  const int status = cli::run_tool("train", [&] {
    flags.parse(argc, argv);
    const bool shapes = flags.str("data") == "shapes";
    const Device device = cli::device_from_flags(flags, "train");

    using Limits = models::CaptionerConfig;
    models::CaptionerConfig config = shapes ? models::CaptionerConfig::tiny_shapes()
                                            : models::CaptionerConfig::notebook();
    if (flags.given("encoder")) {
      config.encoder = models::parse_encoder(flags.choice("encoder", {"tiny", "inception_resnet_v2"}));
      if (config.encoder == models::EncoderKind::Tiny) {
        config.image_size = 128;
        config.freeze_encoder = false;
      } else {
        config.image_size = 299;
        config.freeze_encoder = true;
      }
    }
    if (flags.on("fine-tune-encoder") && flags.on("freeze-encoder"))
      throw cli::UsageError("train: --fine-tune-encoder and --freeze-encoder contradict each other");
    if (flags.on("fine-tune-encoder")) config.freeze_encoder = false;
    if (flags.on("freeze-encoder")) config.freeze_encoder = true;
    if (flags.given("vocab-size"))
      config.vocab_size = flags.integer("vocab-size", Limits::kMinVocabSize, Limits::kMaxVocabSize);
    if (flags.given("max-len"))
      config.max_caption_len = flags.integer("max-len", Limits::kMinCaptionLen, Limits::kMaxCaptionLen);
    if (flags.given("units")) config.units = config.embedding_dim = flags.integer("units", 1, Limits::kMaxUnits);
    if (flags.given("image-size"))
      config.image_size = static_cast<int>(flags.integer("image-size", Limits::kMinImageSize, Limits::kMaxImageSize));
    config.pixel_scaling = parse_pixel_scaling(flags.choice("pixel-scaling", {"inception", "unit"}));
    config.decoder = models::parse_decoder(flags.choice("decoder", {"gru", "transformer"}));
    if (flags.given("input-feeding")) config.input_feeding = flags.choice("input-feeding", {"on", "off"}) == "on";
    if (config.input_feeding && config.decoder != models::DecoderKind::Gru)
      throw cli::UsageError("train: --input-feeding is an option of the GRU decoder only");
    config.decoder_layers = flags.integer("layers", 1, Limits::kMaxDecoderLayers);
    config.heads = flags.integer("heads", 1, Limits::kMaxHeads);
    if (config.decoder == models::DecoderKind::Transformer) config.embedding_dim = config.units;  // one width throughout
    if (config.decoder == models::DecoderKind::Transformer && config.units % config.heads != 0)
      throw cli::UsageError("train: --units " + std::to_string(config.units) +
                            " is not divisible by --heads " + std::to_string(config.heads));

    // Every flag is validated before any work starts.
    models::TrainOptions opt;
    opt.out_dir = flags.str("out");
    opt.epochs = static_cast<int>(flags.given("epochs") ? flags.integer("epochs", 1, 100000) : (shapes ? 12 : 1));
    opt.batch_size = static_cast<int>(flags.integer("batch", 1, 65536));
    opt.learning_rate = flags.number("lr", 0, 10);
    opt.clip_norm = flags.number("clip-norm", 0, 1e9);
    opt.warmup_steps = static_cast<int>(flags.integer("warmup", 0, 100000000));
    opt.seed = static_cast<uint64_t>(flags.integer("seed", 0));
    opt.checkpoint_every = flags.integer("checkpoint-every", 0);
    opt.resume = flags.on("resume");
    opt.all_pairs = flags.on("all-pairs");
    opt.captions_per_image = flags.given("captions-per-image")
                                 ? static_cast<int>(flags.integer("captions-per-image", 1, 1000))
                                 : (shapes && !opt.all_pairs ? 5 : 1);
    if (opt.all_pairs && opt.captions_per_image > 1)
      throw cli::UsageError("train: --all-pairs and --captions-per-image > 1 do not combine");
    // With --resume the checkpoint decides whether the encoder is frozen (checked further down).
    if (flags.given("feature-cache") && !opt.resume && !config.freeze_encoder)
      throw cli::UsageError(
          "train: --feature-cache needs a frozen encoder (inception_resnet_v2, no --fine-tune-encoder)");
    opt.cache_images = shapes;
    opt.device = device;
    opt.max_steps = flags.integer("max-steps", -1);
    const int64_t trace_step = flags.integer("trace-step", 1);
    opt.stop_requested = &g_stop;
    const int train_images = static_cast<int>(flags.integer("train-images", 10, 1000000));
    const std::string dist_backend = flags.choice("dist", {"none", "mpi", "nccl", "auto"});

    // Data-parallel training (docs/distributed.md): join the other ranks. Only rank 0 prints
    // progress (its stdout; every rank keeps stderr for warnings and errors), writes the log,
    // plot and checkpoints; a failure on any rank then ends them all (after run_tool, below).
    comm = dist::make_communicator(dist_backend, device == Device::CUDA);
    opt.comm = comm.get();
    if (comm->rank() != 0) std::cout.setstate(std::ios::badbit);
    if (opt.batch_size % comm->size() != 0)
      throw cli::UsageError("train: --batch " + std::to_string(opt.batch_size) + " is the global batch and must divide among the " +
                            std::to_string(comm->size()) + " ranks");
    // --threads 0 means all cores: shared among the ranks of one machine, not taken by each.
    if (flags.integer("threads", 0, 1024) == 0 && comm->local_size() > 1)
      parallel::set_num_threads(std::max(1, parallel::available_cpus() / comm->local_size()));

    // Then what the file system must provide, before the long work (dataset generation, model
    // building) starts: a usable output directory, and a sound checkpoint to resume from.
    // (The checkpoint first: a --resume into a mistyped directory must not create it.)
    std::optional<models::CheckpointModel> resume_point;
    if (opt.resume) resume_point = read_resume_point(opt.out_dir + "/checkpoint.h5");
    cli::require_output_directory("train", "out", opt.out_dir);

    std::string data_dir = flags.str("data");
    if (shapes) {
      ShapesConfig sc;
      sc.train = train_images;
      sc.image_size = 128;
      sc.seed = 1234;
      data_dir = flags.str("data-dir");
      // Rank 0 generates the dataset while the others wait: N ranks writing it at once would race.
      if (comm->rank() == 0 && !shapes_dataset_is_complete(data_dir, sc)) {
        cli::require_output_directory("train", "data-dir", data_dir);
        std::cout << "generating the shapes dataset in " << data_dir << " ..." << std::endl;
        generate_shapes_dataset(data_dir, sc, [](int done, int total) {
          if (done % 500 == 0 || done == total) std::cout << "\r  " << done << "/" << total << std::flush;
        });
        std::cout << "\n";
      }
      comm->barrier();
    }
    models::TrainData data;
    data.train = read_coco_split(data_dir, "train");
    data.val = read_coco_split(data_dir, "val");
    if (data.train.problem_count() > 0) std::cout << summarize_problems(data.train) << "\n";

    std::unique_ptr<models::Captioner> model;
    if (resume_point) {
      config = resume_point->config;
      model = std::make_unique<models::Captioner>(config, opt.seed);
      data.tokenizer = Tokenizer(resume_point->meta.vocabulary, resume_point->sequence_length);
    } else {
      data.tokenizer = build_caption_tokenizer(data.train, static_cast<size_t>(config.vocab_size),
                                               static_cast<int>(config.max_caption_len));
      config.vocab_size = static_cast<int64_t>(data.tokenizer.vocabulary_size());
      model = std::make_unique<models::Captioner>(config, opt.seed);
      if (flags.given("keras-weights")) {
        models::import_keras_encoder_weights(*model->encoder, flags.str("keras-weights"));
        std::cout << "loaded Keras weights from " << flags.str("keras-weights") << "\n";
      }
    }
    if (flags.given("feature-cache")) {
      if (!config.freeze_encoder)
        throw std::runtime_error("train: a feature cache needs a frozen encoder, and the checkpoint's is trained");
      opt.feature_cache = std::make_shared<FeatureCache>(flags.str("feature-cache"));
      // (train_captioner checks that the cache matches this encoder and its weights)
    }
    std::cout << "model: encoder " << models::to_string(config.encoder) << " ("
              << (config.freeze_encoder ? "frozen" : "trained") << "), decoder " << models::to_string(config.decoder)
              << (config.decoder == models::DecoderKind::Transformer
                      ? " (" + std::to_string(config.decoder_layers) + " layers, " + std::to_string(config.heads) +
                            " heads)"
                      : std::string(config.input_feeding ? " with input feeding" : ""))
              << ", " << model->grid_size() << "x" << model->grid_size() << " attention grid, vocabulary "
              << config.vocab_size << ", " << model->count_parameters(true) << " trainable parameters\n"
              << "data: " << data.train.images.size() << " training images, " << data.val.images.size()
              << " validation images; " << opt.epochs << " epoch(s) of batch " << opt.batch_size << "\n";
    if (comm->backend() != "none")
      std::cout << "data-parallel: " << comm->size() << " rank(s) over " << comm->backend() << ", "
                << opt.batch_size / comm->size() << " images per rank per step\n";

    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    // --trace: armed here, recording from the end of step trace_step - 1 (an optimizer step ends a
    // training step) to the end of step trace_step, when the file is written. Rank 0 only.
    const bool tracing = flags.given("trace") && comm->rank() == 0;
    if (tracing) trace::start(flags.str("trace"), {.skip_steps = trace_step - 1, .steps = 1});
    models::TrainResult r = models::train_captioner(*model, data, opt);
    if (tracing) {
      const size_t events = trace::stop();
      std::cout << "trace of step " << trace_step << ": " << events << " events in " << flags.str("trace")
                << (events == 0 ? " (the run ended before that step)" : "") << "\n";
    }
    std::cout << (r.interrupted ? "stopped" : "done") << " after " << r.global_step << " steps; checkpoint: "
              << r.checkpoint << "\n"
              << "log: " << opt.out_dir << "/train_log.csv, curve: " << opt.out_dir << "/loss_curve.png\n";
    if (comm->backend() != "none" && !r.step_losses.empty())
      std::cout << "communication: " << 1000.0 * r.communication_seconds / r.step_losses.size()
                << " ms per step on rank 0 (inside collective calls, " << r.step_losses.size() << " steps)\n";
    if (!r.interrupted) return cli::kExitSuccess;
    return cli::exit_status_for_signal(g_signal.load() != 0 ? g_signal.load() : SIGINT);
  });
  // A rank that failed while the others go on would leave them waiting in their next collective
  // call forever: end the whole job with the status. (An interrupted run stops on every rank at
  // the same step, after its save, and finishes normally.)
  if (comm && comm->size() > 1 && (status == cli::kExitFailure || status == cli::kExitUsage)) comm->abort(status);
  return status;
}
