// Writes the committed seed inputs of tests/fuzz/seeds/ that tests/data does not already provide
// (tests/fuzz/README.md): PNGs of every colour type, small checkpoints for the checkpoint and
// captioner targets, feature caches, and inputs in the layouts the Flickr and tokenizer targets
// define. Run by `make fuzz-seeds`; the output is committed, so ordinary runs need not build this.
// It also writes one hand-made hostile input into the regression corpus (write_oversized_config):
// an input every build must refuse, but not a seed, since until it is refused every fuzzing job
// that drew it would stop at once.
//
// Usage: make_seeds SEEDS_DIR TEST_DATA_DIR REGRESSIONS_DIR
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

#include "io/checkpoint.h"
#include "io/feature_cache.h"
#include "io/hdf5.h"
#include "models/captioner.h"
#include "tests/fuzz/small_state.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

// ---- PNG: libpng directly, because write_png only writes 8-bit RGB and the reader must handle
// every colour type, bit depth, transparency and interlacing that a PNG can have.

struct PngSpec {
  const char* name;
  int bit_depth;
  int color_type;
  bool interlaced;
  bool with_trns;
};

void write_png_seed(const fs::path& path, const PngSpec& spec) {
  constexpr int kWidth = 5, kHeight = 3;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw std::runtime_error("cannot create " + path.string());
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    throw std::runtime_error("libpng failed on " + path.string());
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, kWidth, kHeight, spec.bit_depth, spec.color_type,
               spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (spec.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {250, 250, 250}};
    png_set_PLTE(png, info, palette, 4);
    if (spec.with_trns) {
      png_byte alpha[2] = {0, 128};
      png_set_tRNS(png, info, alpha, 2, nullptr);
    }
  } else if (spec.with_trns) {
    png_color_16 key{};
    key.gray = 1;
    key.red = 1;
    png_set_tRNS(png, info, nullptr, 0, &key);
  }
  png_set_gAMA(png, info, 0.45455);
  png_write_info(png, info);
  const int channels = png_get_channels(png, info);
  const size_t row_bytes = (static_cast<size_t>(kWidth) * channels * spec.bit_depth + 7) / 8;
  std::vector<png_byte> pixels(row_bytes * kHeight);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<png_byte>(i * 37 + 11);
  if (spec.color_type == PNG_COLOR_TYPE_PALETTE && spec.bit_depth == 8)
    for (png_byte& p : pixels) p %= 4;  // stay inside the palette
  std::vector<png_bytep> rows(kHeight);
  for (int y = 0; y < kHeight; ++y) rows[y] = pixels.data() + y * row_bytes;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

void write_pngs(const fs::path& dir) {
  const PngSpec specs[] = {
      {"rgb8.png", 8, PNG_COLOR_TYPE_RGB, false, false},
      {"rgb16_interlaced.png", 16, PNG_COLOR_TYPE_RGB, true, false},
      {"rgba8.png", 8, PNG_COLOR_TYPE_RGB_ALPHA, false, false},
      {"gray1.png", 1, PNG_COLOR_TYPE_GRAY, false, false},
      {"gray4_trns.png", 4, PNG_COLOR_TYPE_GRAY, false, true},
      {"gray16.png", 16, PNG_COLOR_TYPE_GRAY, false, false},
      {"gray_alpha8_interlaced.png", 8, PNG_COLOR_TYPE_GRAY_ALPHA, true, false},
      {"palette2_trns.png", 2, PNG_COLOR_TYPE_PALETTE, false, true},
      {"palette8.png", 8, PNG_COLOR_TYPE_PALETTE, false, false},
  };
  for (const PngSpec& spec : specs) write_png_seed(dir / spec.name, spec);
}

// ---- Checkpoints

// Small but valid captioner configs: the tiny encoder (its tensors are most of the file) with a
// decoder of a handful of units, one per decoder the loader builds (the second one also without
// position embedding and with the other pixel scaling).
std::vector<std::pair<std::string, models::CaptionerConfig>> small_configs() {
  models::CaptionerConfig gru = models::CaptionerConfig::tiny_shapes();
  gru.vocab_size = 5;
  gru.max_caption_len = 6;
  gru.embedding_dim = 2;
  gru.units = 4;
  models::CaptionerConfig transformer = gru;
  transformer.decoder = models::DecoderKind::Transformer;
  transformer.embedding_dim = transformer.units;  // one width throughout the Transformer
  transformer.decoder_layers = 1;
  transformer.heads = 2;
  transformer.ff_dim = 4;
  transformer.position_embedding = false;
  transformer.pixel_scaling = PixelScaling::Unit;
  return {{"gru", gru}, {"transformer", transformer}};
}

const std::vector<std::string> kVocabulary = {"", "[UNK]", "<start>", "<end>", "circle"};

void write_small_checkpoints(const fs::path& dir) {
  fuzz::SmallState state(0.25f);
  CheckpointContents meta;
  meta.model_config = small_configs().front().second.to_json();
  meta.progress = {{"epoch", 1}, {"global_step", 3}};
  meta.vocabulary = kVocabulary;
  save_checkpoint((dir / "small.h5").string(), state.model, "adam", state.optimizer, 3, meta);
  meta.vocabulary.clear();
  save_checkpoint((dir / "small_model_only.h5").string(), state.model, "adam", {}, 0, meta);
}

// A loadable captioner checkpoint in the layout of save_checkpoint (io/checkpoint.h), except that
// the weights are never written: HDF5 then allocates no storage for them and reads return the fill
// value, zero. The tiny encoder's ~1 MB of floats would otherwise be most of the seed (gzip does not
// help: each chunked dataset costs a B-tree node of a few KB), and the fuzzer would spend its time
// mutating weight bytes instead of the structure around them.
void write_captioner_checkpoint(const fs::path& path, const models::CaptionerConfig& config) {
  models::Captioner model(config, 1);
  H5File file = H5File::create(path.string());
  file.set_string_attr("/", "format", "glimpse-checkpoint");
  file.set_int_attr("/", "format_version", kCheckpointFormatVersion);
  file.set_string_attr("/", "model_config", config.to_json().dump());
  file.set_string_attr("/", "progress", nlohmann::json{{"epoch", 0}, {"global_step", 0}}.dump());
  file.set_string_attr("/", "saved_at", "2000-01-01T00:00:00Z");
  for (const nn::NamedTensor& t : model.named_tensors())
    file.create_dataset("/model/" + t.name, t.tensor->shape(), H5DType::float32);
  file.create_group("/optimizer");
  file.set_string_attr("/optimizer", "type", "adam");
  file.set_int_attr("/optimizer", "iterations", 0);
  file.write_strings("/tokenizer/vocabulary", kVocabulary);
  file.close();
}

// A checkpoint whose config keeps every field within CaptionerConfig's own limits, and its
// vocabulary consistent with vocab_size, but asks for a decoder of 65536 units fed 65536-wide
// embeddings: GRU kernels alone of 2 x 65536 x 196608 floats, about 100 GB. The file holds no
// tensors: load_captioner builds the model from the config before it reads any, so only
// validation of the config as a whole (or of the sizes against the file) can refuse it cheaply.
void write_oversized_config(const fs::path& path) {
  nlohmann::json config = small_configs().front().second.to_json();
  config["embedding_dim"] = 65536;
  config["units"] = 65536;
  H5File file = H5File::create(path.string());
  file.set_string_attr("/", "format", "glimpse-checkpoint");
  file.set_int_attr("/", "format_version", kCheckpointFormatVersion);
  file.set_string_attr("/", "model_config", config.dump());
  file.set_string_attr("/", "progress", nlohmann::json{{"epoch", 0}}.dump());
  file.set_string_attr("/", "saved_at", "2000-01-01T00:00:00Z");
  file.write_strings("/tokenizer/vocabulary", kVocabulary);
  file.close();
}

// ---- Feature caches (the real writer), float16 and float32.

void write_feature_caches(const fs::path& dir) {
  FeatureCacheInfo info;
  info.encoder = "tiny";
  info.image_size = 128;
  info.pixel_scaling = "inception";
  info.cells = 4;
  info.channels = 3;
  info.weights = "fuzz-seed";
  const std::vector<int64_t> ids = {9, 25, 42};
  auto encode = [&](size_t first, size_t count) {
    std::vector<float> values(count * 4 * 3);
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(first) + 0.125f * static_cast<float>(i);
    return Tensor::from_vector(values, {static_cast<int64_t>(count), 4, 3});
  };
  FeatureCache::build((dir / "float16.h5").string(), ids, info, /*float16=*/true, 2, encode);
  FeatureCache::build((dir / "float32.h5").string(), ids, info, /*float16=*/false, 3, encode);
}

// ---- Plain inputs in the layouts fuzz_flickr_captions.cpp and fuzz_tokenizer.cpp define.

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void write_text_seeds(const fs::path& seeds, const fs::path& test_data) {
  const fs::path flickr = test_data / "captions" / "flickr";
  write_file(seeds / "flickr_captions" / "tokens_and_split_list.txt",
             read_file(flickr / "Flickr8k.token.txt") + std::string(1, '\0') +
                 read_file(flickr / "Flickr_8k.trainImages.txt"));
  const std::string captions =
      "a small red circle on a plain background\n"
      "A large blue square to the left of a small green triangle.\n"
      "  two circles: one ORANGE, one purple  \n"
      "\n"
      "a yellow triangle above a small-green square\n";
  auto header = [](unsigned char max_tokens, unsigned char length) {
    return std::string{static_cast<char>(max_tokens), static_cast<char>(length)};
  };
  write_file(seeds / "tokenizer" / "unlimited.txt", header(0, 15) + captions);
  write_file(seeds / "tokenizer" / "max8_len4.txt", header(8, 3) + captions);
  write_file(seeds / "tokenizer" / "max_tokens_1.txt", header(1, 7) + captions);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: make_seeds SEEDS_DIR TEST_DATA_DIR REGRESSIONS_DIR\n";
    return 2;
  }
  try {
    const fs::path seeds = argv[1];
    for (const char* target : {"png", "checkpoint", "captioner", "feature_cache", "flickr_captions", "tokenizer"}) {
      fs::remove_all(seeds / target);  // no stale seeds from an older version of this program
      fs::create_directories(seeds / target);
    }
    write_pngs(seeds / "png");
    write_small_checkpoints(seeds / "checkpoint");
    for (const auto& [name, config] : small_configs())
      write_captioner_checkpoint(seeds / "captioner" / (name + ".h5"), config);
    fs::create_directories(fs::path(argv[3]) / "captioner");
    write_oversized_config(fs::path(argv[3]) / "captioner" / "hand-made-oversized-config.h5");
    write_feature_caches(seeds / "feature_cache");
    write_text_seeds(seeds, argv[2]);
  } catch (const std::exception& e) {
    std::cerr << "make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
