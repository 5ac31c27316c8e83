// CaptionBatcher (see batches.h).
#include "io/batches.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace glimpse {

namespace {
// Threads decoding one batch: enough to keep ahead of a CPU training step, few enough not to
// starve it.
constexpr int64_t kDecodeThreads = 2;
}  // namespace

std::vector<float> load_image_for_model(const std::string& path, int size, PixelScaling scaling) {
  return preprocess_image(read_jpeg(path), size, scaling);
}

Tokenizer build_caption_tokenizer(const CaptionDataset& data, size_t max_tokens,
                                  int sequence_length) {
  std::vector<std::string> texts;
  for (const CaptionedImage& image : data.images)
    for (const std::string& caption : image.captions) texts.push_back(with_markers(caption));
  Tokenizer tokenizer(sequence_length);
  tokenizer.adapt(texts, max_tokens);
  return tokenizer;
}

void CaptionBatcher::caption_ids(const Tokenizer& tokenizer, const std::string& caption,
                                 std::vector<int32_t>& input, std::vector<int32_t>& target) {
  input = tokenizer.encode(with_markers(caption));
  target.assign(input.size(), 0);
  for (size_t i = 0; i + 1 < input.size(); ++i) target[i] = input[i + 1];
}

CaptionBatcher::CaptionBatcher(const CaptionDataset& data, const Tokenizer& tokenizer,
                               BatcherOptions options)
    : data_(data), tokenizer_(tokenizer), options_(std::move(options)) {
  if (options_.batch_size <= 0) throw std::invalid_argument("CaptionBatcher: batch size must be positive");
  if (data_.images.empty()) throw std::invalid_argument("CaptionBatcher: the dataset has no images");
  if (options_.captions_per_image < 1)
    throw std::invalid_argument("CaptionBatcher: captions_per_image must be at least 1");
  if (options_.captions_per_image > 1 && options_.all_pairs)
    throw std::invalid_argument("CaptionBatcher: captions_per_image > 1 and all_pairs do not combine");
  if (options_.shard_count < 1 || options_.shard_index < 0 || options_.shard_index >= options_.shard_count)
    throw std::invalid_argument("CaptionBatcher: shard_index must be in [0, shard_count)");
  if (options_.cache_images) image_cache_.resize(data_.images.size());
}

CaptionBatcher::~CaptionBatcher() {
  if (pending_.valid()) pending_.wait();
}

std::launch CaptionBatcher::launch_policy() const {
  // The HDF5 library is not thread-safe, and the training thread writes checkpoints: batches read
  // from a feature cache are therefore loaded on the calling thread (reading them is cheap).
  return options_.feature_cache ? std::launch::deferred : std::launch::async;
}

int64_t CaptionBatcher::steps_per_epoch() const {
  size_t pairs = 0;
  if (options_.all_pairs) {
    for (const auto& im : data_.images) pairs += im.captions.size();
  } else {
    pairs = data_.images.size();
  }
  const int64_t b = static_cast<int64_t>(options_.batch_size) * options_.shard_count;
  return options_.drop_remainder ? static_cast<int64_t>(pairs) / b
                                 : (static_cast<int64_t>(pairs) + b - 1) / b;
}

void CaptionBatcher::start_epoch(int epoch, int64_t skip_steps) {
  if (pending_.valid()) pending_.wait();
  pending_ = {};
  pairs_ = epoch_pairs(data_, options_.seed, epoch, options_.all_pairs);
  next_step_ = std::min(skip_steps, steps_per_epoch());
  if (next_step_ < steps_per_epoch())
    pending_ = std::async(launch_policy(), [this, s = next_step_] { return load(s); });
}

int64_t CaptionBatcher::bad_images() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bad_images_;
}

CaptionBatch CaptionBatcher::load(int64_t step) {
  // This rank's slice of the step's global batch (the whole batch in one process).
  const int64_t global_batch = static_cast<int64_t>(options_.batch_size) * options_.shard_count;
  const int64_t pairs = static_cast<int64_t>(pairs_.size());
  const int64_t first = std::min(step * global_batch + int64_t{options_.shard_index} * options_.batch_size, pairs);
  const int64_t last = std::min<int64_t>(first + options_.batch_size, pairs);
  const int64_t n = last - first;
  const int T = tokenizer_.sequence_length();
  const bool use_features = options_.feature_cache != nullptr;
  int64_t item_size = 0;
  Shape item_shape;
  if (use_features) {
    const FeatureCacheInfo& info = options_.feature_cache->info();
    item_shape = {info.cells, info.channels};
  } else {
    item_shape = {options_.image_size, options_.image_size, 3};
  }
  item_size = shape_numel(item_shape);

  std::vector<std::vector<float>> items(n);
  std::vector<std::string> errors(n);
  // Decode on a few plain threads, not the kernels' pool (tensor/parallel.h): this runs beside the
  // training step, which keeps the pool busy, and must not wait for it or delay it.
  auto load_item = [&](int64_t i) {
    const size_t image_index = pairs_[first + i].first;
    const CaptionedImage& image = data_.images[image_index];
    try {
      if (use_features) {
        items[i] = options_.feature_cache->features(image.image_id);
      } else if (options_.cache_images && image_cache_[image_index]) {
        items[i] = *image_cache_[image_index];
      } else {
        items[i] = load_image_for_model(image.path, options_.image_size, options_.scaling);
        if (options_.cache_images)
          image_cache_[image_index] = std::make_shared<const std::vector<float>>(items[i]);
      }
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  };
  const int64_t workers = use_features ? 1 : std::min<int64_t>(n, kDecodeThreads);
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += workers) load_item(i);
    });
  for (int64_t i = 0; i < n; i += std::max<int64_t>(workers, 1)) load_item(i);
  for (std::thread& t : pool) t.join();

  CaptionBatch batch;
  std::vector<float> pixels;
  std::vector<int32_t> inputs, targets, in, tg;
  for (int64_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++bad_images_;
      if (bad_messages_.size() < 100) bad_messages_.push_back(errors[i]);
      continue;
    }
    const auto [image_index, caption_index] = pairs_[first + i];
    const std::vector<std::string>& captions = data_.images[image_index].captions;
    for (int j = 0; j < options_.captions_per_image; ++j) {
      caption_ids(tokenizer_, captions[(caption_index + j) % captions.size()], in, tg);
      inputs.insert(inputs.end(), in.begin(), in.end());
      targets.insert(targets.end(), tg.begin(), tg.end());
    }
    pixels.insert(pixels.end(), items[i].begin(), items[i].end());
    batch.image_indices.push_back(image_index);
  }
  const int64_t kept = batch.size();
  const int64_t rows = kept * options_.captions_per_image;
  batch.captions_per_image = options_.captions_per_image;
  Shape shape{kept};
  shape.insert(shape.end(), item_shape.begin(), item_shape.end());
  (void)item_size;
  batch.pixels_or_features = Tensor::from_vector(pixels, shape);
  batch.input_ids = Tensor::from_vector(inputs, {rows, T});
  batch.target_ids = Tensor::from_vector(targets, {rows, T});
  return batch;
}

bool CaptionBatcher::next(CaptionBatch& batch) {
  while (next_step_ < steps_per_epoch()) {
    batch = pending_.get();
    ++next_step_;
    if (next_step_ < steps_per_epoch())
      pending_ = std::async(launch_policy(), [this, s = next_step_] { return load(s); });
    // A batch whose every image failed is skipped (unless the caller must see every step).
    if (batch.size() > 0 || options_.keep_empty_batches) return true;
  }
  return false;
}

}  // namespace glimpse
