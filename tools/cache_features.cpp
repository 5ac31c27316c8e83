// tools/cache_features: runs the frozen encoder once over the images of a COCO-format directory and
// keeps its features in an HDF5 file, so that `train --feature-cache` trains the decoder without
// re-running Inception-ResNet-v2 every epoch (the encoder is ~95% of a frozen-encoder step).
//
// Under mpirun the ranks share the encoding (docs/distributed.md): in each round every rank
// encodes its own block of --batch images, rank 0 gathers the blocks in rank order and writes them,
// so the file is the one a single process writes, in the same order.

#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include "cli.h"
#include "dist/communicator.h"
#include "io/batches.h"
#include "io/captions.h"
#include "io/feature_cache.h"
#include "models/captioner.h"
#include "models/keras_import.h"
#include "tensor/autograd.h"
#include "tensor/parallel.h"

using namespace glimpse;

int main(int argc, char** argv) {
  cli::use_passive_openmp_threads(argv);
  cli::Flags flags("cache_features", "--data DIR --out FILE [options]   (see README.md)");
  flags.option("data", "", "COCO-format directory (annotations/captions_<split>*.json + images)");
  flags.option("splits", "train,val", "comma-separated splits to cache (train needs train and val)");
  flags.option("out", "", "the cache file to write (HDF5, replaced atomically)");
  flags.option("encoder", "inception_resnet_v2", "tiny | inception_resnet_v2");
  flags.option("keras-weights", "", "Keras ImageNet weights (.h5); pass the same file to train");
  flags.option("image-size", "", "input image size (default: 128 tiny, 299 inception_resnet_v2)");
  flags.option("pixel-scaling", "inception", "inception (x/127.5-1) | unit (x/255)");
  flags.flag("float16", "store features as float16 (half the disk, ~3 significant digits)");
  flags.option("batch", "32", "images per encoder call (per rank under mpirun)");
  flags.option("device", "cpu", "cpu | cuda");
  flags.option("threads", "0", "CPU threads (0 = all cores)");
  flags.option("seed", "1", "seed of the encoder's initial weights (matters only without --keras-weights)");
  flags.option("dist", "auto", "none | mpi | auto: share the encoding among the ranks of mpirun (auto: mpi when "
               "launched by mpirun); rank 0 writes the file");
  flags.also_exits("; 1 also when some images could not be read (cached as blank, the cache is still written)");
  std::unique_ptr<dist::Communicator> comm;  // outlives run_tool: a failed rank must end the others
  bool finished = false;                     // every rank reached the end (blank images or not)
  const int status = cli::run_tool("cache_features", [&] {
    flags.parse(argc, argv);
    if (!flags.given("data") || !flags.given("out"))
      throw cli::UsageError("cache_features: --data and --out are required (see --help)");
    const Device device = cli::device_from_flags(flags, "cache_features");

    using Limits = models::CaptionerConfig;
    models::CaptionerConfig config = models::CaptionerConfig::notebook();
    config.encoder = models::parse_encoder(flags.choice("encoder", {"tiny", "inception_resnet_v2"}));
    config.image_size =
        flags.given("image-size")
            ? static_cast<int>(flags.integer("image-size", Limits::kMinImageSize, Limits::kMaxImageSize))
            : (config.encoder == models::EncoderKind::Tiny ? 128 : 299);
    config.pixel_scaling = parse_pixel_scaling(flags.choice("pixel-scaling", {"inception", "unit"}));
    const int batch = static_cast<int>(flags.integer("batch", 1, 4096));
    const uint64_t seed = static_cast<uint64_t>(flags.integer("seed", 0));
    // The gathered features travel in host memory whatever the device (they go to disk from
    // there), so MPI is the communicator even for --device cuda.
    const std::string dist_backend = flags.choice("dist", {"none", "mpi", "auto"});
    comm = dist::make_communicator(dist_backend, /*gpu_device=*/false);
    const int rank = comm->rank(), ranks = comm->size();
    if (rank != 0) std::cout.setstate(std::ios::badbit);
    // --threads 0 means all cores: shared among the ranks of one machine, not taken by each.
    if (flags.integer("threads", 0, 1024) == 0 && comm->local_size() > 1)
      parallel::set_num_threads(std::max(1, parallel::available_cpus() / comm->local_size()));
    // Checked before hours of encoding: the cache is only written at the end.
    if (rank == 0) cli::require_output_file("cache_features", "out", flags.str("out"));

    // Every image of the requested splits, each id once.
    std::vector<CaptionedImage> images;
    std::set<int64_t> seen;
    std::stringstream splits(flags.str("splits"));
    for (std::string split; std::getline(splits, split, ',');) {
      CaptionDataset d = read_coco_split(flags.str("data"), split);
      if (d.problem_count() > 0) std::cout << summarize_problems(d) << "\n";
      for (CaptionedImage& im : d.images)
        if (seen.insert(im.image_id).second) images.push_back(std::move(im));
      std::cout << split << ": " << d.images.size() << " images\n";
    }
    if (images.empty()) throw std::runtime_error("cache_features: no images in " + flags.str("data"));

    // A Captioner builds its encoder first from the seed, as train's does, so that without Keras
    // weights the two encoders still agree (the fingerprint check in train relies on it).
    models::Captioner model(config, seed);
    if (flags.given("keras-weights")) {
      models::import_keras_encoder_weights(*model.encoder, flags.str("keras-weights"));
      std::cout << "loaded Keras weights from " << flags.str("keras-weights") << "\n";
    } else {
      std::cout << "warning: no --keras-weights: caching the features of a randomly initialised encoder\n";
    }
    model.encoder->to(device);
    model.encoder->eval();

    FeatureCacheInfo info{models::to_string(config.encoder), config.image_size, to_string(config.pixel_scaling),
                          model.grid_cells(), model.encoder->output_channels(), model.encoder->fingerprint()};
    std::vector<int64_t> ids;
    for (const CaptionedImage& im : images) ids.push_back(im.image_id);
    const int64_t S = config.image_size;
    int failures = 0;
    auto encode = [&](size_t first, size_t count) {
      std::vector<float> pixels;
      pixels.reserve(count * S * S * 3);
      for (size_t i = first; i < first + count; ++i) {
        try {
          std::vector<float> px = load_image_for_model(images[i].path, config.image_size, config.pixel_scaling);
          pixels.insert(pixels.end(), px.begin(), px.end());
        } catch (const std::exception& e) {
          // One unreadable image must not cost a run of hours: it is cached as an all-zero input,
          // reported here, and the exit status says so.
          std::cerr << "\nwarning: " << images[i].path << ": " << e.what() << " (cached as blank)\n";
          ++failures;
          pixels.insert(pixels.end(), S * S * 3, 0.0f);
        }
      }
      NoGradGuard no_grad;
      Tensor x = Tensor::from_vector(pixels, {static_cast<int64_t>(count), S, S, 3}).to(device);
      return model.encoder_features(x).to(Device::CPU);
    };
    std::cout << "encoding " << ids.size() << " images with " << models::to_string(config.encoder) << " at " << S
              << "x" << S << " -> " << info.cells << "x" << info.channels << " features each"
              << (ranks > 1 ? " on " + std::to_string(ranks) + " ranks" : std::string()) << "\n";
    if (ranks > 1) {
      // Features from different encoders would mix silently in one file: every rank must hold the
      // weights rank 0 records (the same --keras-weights file on every machine).
      char theirs[256] = {};
      std::strncpy(theirs, info.weights.c_str(), sizeof theirs - 1);
      comm->broadcast_host(theirs, sizeof theirs, 0);
      if (info.weights.substr(0, sizeof theirs - 1) != theirs)
        throw std::runtime_error("cache_features: rank " + std::to_string(rank) + "'s encoder weights (" + info.weights +
                                 ") differ from rank 0's (" + theirs + "); give every rank the same --keras-weights");
    }

    // One round: `ranks` blocks of `batch` images from `first` on; this rank encodes block `rank`
    // (fewer or no images at the end), rank 0 receives them all. Every rank runs the same rounds,
    // so no rank waits forever on a gather the others never reach.
    const int64_t per_image = info.cells * info.channels;
    const size_t round = static_cast<size_t>(batch) * static_cast<size_t>(ranks);
    auto encode_round = [&](size_t first, size_t count) -> Tensor {
      const size_t mine_first = first + static_cast<size_t>(rank) * batch;
      const size_t mine = mine_first < first + count ? std::min<size_t>(batch, first + count - mine_first) : 0;
      Tensor f = mine > 0 ? encode(mine_first, mine) : Tensor();
      if (ranks == 1) return f;
      std::vector<float> block(static_cast<size_t>(batch * per_image), 0.0f);
      if (mine > 0) {
        std::vector<float> values = f.to_vector();
        std::copy(values.begin(), values.end(), block.begin());
      }
      std::vector<float> all(rank == 0 ? round * per_image : 0);
      comm->gather_host(block.data(), block.size(), all.data(), 0);
      if (rank != 0) return Tensor();
      // Block r starts at image first + r * batch: the blocks in rank order are the images in order.
      all.resize(count * per_image);
      return Tensor::from_vector(all, {static_cast<int64_t>(count), info.cells, info.channels});
    };
    if (rank == 0) {
      FeatureCache::build(flags.str("out"), ids, info, flags.on("float16"), static_cast<int>(round), encode_round,
                          [](size_t done, size_t total) { std::cout << "\r  " << done << "/" << total << std::flush; });
    } else {
      for (size_t first = 0; first < ids.size(); first += round) encode_round(first, std::min(round, ids.size() - first));
    }
    double failed = failures;
    comm->all_reduce_sum_host(&failed, 1);
    std::cout << "\nwrote " << flags.str("out") << " (encoder weights " << info.weights << ")\n";
    if (failed > 0) std::cout << failed << " image(s) could not be read and were cached blank\n";
    finished = true;
    return failed > 0 ? cli::kExitFailure : cli::kExitSuccess;
  });
  // A rank that failed while the others go on would leave them waiting in their next gather
  // forever: end the whole job with the status.
  if (comm && comm->size() > 1 && !finished && (status == cli::kExitFailure || status == cli::kExitUsage))
    comm->abort(status);
  return status;
}
