// tools/train: trains the captioner on the embedded "shapes" dataset or on a COCO-format
// directory, with checkpoints, resume and a loss log. All the work is in models/training.cpp.

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "cli.h"
#include "io/batches.h"
#include "io/captions.h"
#include "io/checkpoint.h"
#include "io/shapes_dataset.h"
#include "models/keras_import.h"
#include "models/training.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {
std::atomic<bool> g_stop{false};
void on_interrupt(int) {
  if (g_stop.load()) std::_Exit(130);  // a second Ctrl-C quits at once
  g_stop.store(true);
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
  flags.option("epochs", "", "epochs (default: 12 for shapes, 1 otherwise)");
  flags.option("batch", "32", "batch size");
  flags.option("lr", "0.001", "Adam learning rate");
  flags.option("clip-norm", "0", "clip gradients to this global norm (0 = off)");
  flags.option("warmup", "0", "warmup steps before cosine decay (0 = constant learning rate)");
  flags.flag("resume", "continue from OUT/checkpoint.h5");
  flags.option("checkpoint-every", "0", "also checkpoint every N steps (0 = each epoch only)");
  flags.option("feature-cache", "", "HDF5 features of the frozen encoder (build with tools/cache_features, same --keras-weights)");
  flags.option("device", "cpu", "cpu | cuda");
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
  flags.option("pixel-scaling", "inception", "inception (x/127.5-1) | unit (x/255, the notebook's)");
  try {
    flags.parse(argc, argv);
    const bool shapes = flags.str("data") == "shapes";
    const Device device = cli::device_from_flags(flags, "train");

    models::CaptionerConfig config = shapes ? models::CaptionerConfig::tiny_shapes()
                                            : models::CaptionerConfig::notebook();
    if (flags.given("encoder")) {
      config.encoder = flags.choice("encoder", {"tiny", "inception_resnet_v2"});
      if (config.encoder == "tiny") {
        config.image_size = 128;
        config.freeze_encoder = false;
      } else {
        config.image_size = 299;
        config.freeze_encoder = true;
      }
    }
    if (flags.on("fine-tune-encoder")) config.freeze_encoder = false;
    if (flags.given("vocab-size")) config.vocab_size = flags.integer("vocab-size", 3, 10000000);
    if (flags.given("max-len")) config.max_caption_len = flags.integer("max-len", 3, 4096);
    if (flags.given("units")) config.units = config.embedding_dim = flags.integer("units", 1, 65536);
    if (flags.given("image-size")) config.image_size = static_cast<int>(flags.integer("image-size", 32, 2048));
    config.pixel_scaling = flags.choice("pixel-scaling", {"inception", "unit"});
    config.decoder = flags.choice("decoder", {"gru", "transformer"});
    if (flags.given("input-feeding")) config.input_feeding = flags.choice("input-feeding", {"on", "off"}) == "on";
    if (config.input_feeding && config.decoder != "gru")
      throw std::invalid_argument("train: --input-feeding is an option of the GRU decoder only");
    config.decoder_layers = flags.integer("layers", 1, 64);
    config.heads = flags.integer("heads", 1, 1024);
    if (config.decoder == "transformer") config.embedding_dim = config.units;  // one width throughout
    if (config.decoder == "transformer" && config.units % config.heads != 0)
      throw std::invalid_argument("train: --units " + std::to_string(config.units) +
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
      throw std::invalid_argument("train: --all-pairs and --captions-per-image > 1 do not combine");
    opt.cache_images = shapes;
    opt.device = device;
    opt.max_steps = flags.integer("max-steps", -1);
    opt.stop_requested = &g_stop;

    const int train_images = static_cast<int>(flags.integer("train-images", 10, 1000000));
    std::string data_dir = flags.str("data");
    if (shapes) {
      ShapesConfig sc;
      sc.train = train_images;
      sc.image_size = 128;
      sc.seed = 1234;
      data_dir = flags.str("data-dir");
      if (!shapes_dataset_is_complete(data_dir, sc)) {
        std::cout << "generating the shapes dataset in " << data_dir << " ..." << std::endl;
        generate_shapes_dataset(data_dir, sc, [](int done, int total) {
          if (done % 500 == 0 || done == total) std::cout << "\r  " << done << "/" << total << std::flush;
        });
        std::cout << "\n";
      }
    }
    models::TrainData data;
    data.train = read_coco_split(data_dir, "train");
    data.val = read_coco_split(data_dir, "val");
    if (data.train.problem_count() > 0) std::cout << summarize_problems(data.train) << "\n";

    std::unique_ptr<models::Captioner> model;
    if (opt.resume) {
      const std::string ckpt = opt.out_dir + "/checkpoint.h5";
      CheckpointContents meta = read_checkpoint_meta(ckpt);
      config = models::CaptionerConfig::from_json(meta.model_config);
      model = std::make_unique<models::Captioner>(config, opt.seed);
      data.tokenizer = Tokenizer(meta.vocabulary, meta.model_config.value("sequence_length",
                                                                          static_cast<int>(config.max_caption_len)));
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
      opt.feature_cache = std::make_shared<FeatureCache>(flags.str("feature-cache"));
      // (train_captioner checks that the cache matches this encoder and its weights)
      if (!config.freeze_encoder)
        throw std::invalid_argument("train: a feature cache needs a frozen encoder");
    }
    std::cout << "model: encoder " << config.encoder << " (" << (config.freeze_encoder ? "frozen" : "trained")
              << "), decoder " << config.decoder
              << (config.decoder == "transformer" ? " (" + std::to_string(config.decoder_layers) + " layers, " +
                                                         std::to_string(config.heads) + " heads)"
                                                   : std::string(config.input_feeding ? " with input feeding" : ""))
              << ", " << model->grid_size() << "x" << model->grid_size() << " attention grid, vocabulary "
              << config.vocab_size << ", " << model->count_parameters(true) << " trainable parameters\n"
              << "data: " << data.train.images.size() << " training images, " << data.val.images.size()
              << " validation images; " << opt.epochs << " epoch(s) of batch " << opt.batch_size << "\n";

    std::signal(SIGINT, on_interrupt);
    models::TrainResult r = models::train_captioner(*model, data, opt);
    std::cout << (r.interrupted ? "stopped" : "done") << " after " << r.global_step << " steps; checkpoint: "
              << r.checkpoint << "\n"
              << "log: " << opt.out_dir << "/train_log.csv, curve: " << opt.out_dir << "/loss_curve.png\n";
    return r.interrupted ? 130 : 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
