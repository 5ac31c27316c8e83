// FeatureCache (see feature_cache.h).
#include "io/feature_cache.h"

#include <mutex>
#include <stdexcept>

namespace glimpse {

void FeatureCache::build(const std::string& path, const std::vector<int64_t>& image_ids,
                         const FeatureCacheInfo& info, bool float16, int batch_size,
                         const std::function<Tensor(size_t, size_t)>& encode,
                         const std::function<void(size_t, size_t)>& progress) {
  if (batch_size <= 0) throw std::invalid_argument("FeatureCache::build: batch size must be positive");
  const int64_t n = static_cast<int64_t>(image_ids.size());
  write_file_atomically(path, [&](H5File& file) {
    DatasetOptions chunks;
    chunks.chunk_shape = {1, info.cells, info.channels};
    file.create_dataset("/features", {n, info.cells, info.channels},
                        float16 ? H5DType::float16 : H5DType::float32, chunks);
    file.write("/image_ids", {n}, std::span<const int64_t>(image_ids));
    file.set_string_attr("/", "encoder", info.encoder);
    file.set_int_attr("/", "image_size", info.image_size);
    file.set_string_attr("/", "pixel_scaling", info.pixel_scaling);
    file.set_int_attr("/", "cells", info.cells);
    file.set_int_attr("/", "channels", info.channels);
    file.set_string_attr("/", "weights", info.weights);
    for (int64_t first = 0; first < n; first += batch_size) {
      const int64_t count = std::min<int64_t>(batch_size, n - first);
      Tensor f = encode(static_cast<size_t>(first), static_cast<size_t>(count));
      if (f.shape() != Shape{count, info.cells, info.channels})
        throw std::runtime_error("FeatureCache::build: encoder returned " + shape_str(f.shape()) +
                                 " for " + std::to_string(count) + " images, expected [" +
                                 std::to_string(count) + ", " + std::to_string(info.cells) + ", " +
                                 std::to_string(info.channels) + "]");
      std::vector<float> values = f.to_vector();
      file.write_rows("/features", first, std::span<const float>(values));
      if (progress) progress(static_cast<size_t>(first + count), static_cast<size_t>(n));
    }
  });
}

FeatureCache::FeatureCache(const std::string& path)
    : path_(path), file_(std::make_unique<H5File>(H5File::open_read(path))) {
  if (!file_->exists("/features") || !file_->exists("/image_ids"))
    throw std::runtime_error("feature cache " + path + ": missing /features or /image_ids");
  info_.encoder = file_->read_string_attr("/", "encoder");
  info_.image_size = static_cast<int>(file_->read_int_attr("/", "image_size"));
  info_.pixel_scaling = file_->read_string_attr("/", "pixel_scaling");
  info_.cells = file_->read_int_attr("/", "cells");
  info_.channels = file_->read_int_attr("/", "channels");
  if (file_->has_attr("/", "weights")) info_.weights = file_->read_string_attr("/", "weights");
  Shape shape = file_->shape("/features");
  if (shape.size() != 3 || shape[1] != info_.cells || shape[2] != info_.channels)
    throw std::runtime_error("feature cache " + path + ": /features has shape " + shape_str(shape) +
                             ", inconsistent with its attributes");
  std::vector<int64_t> ids = file_->read_int64("/image_ids", {shape[0]});
  for (size_t i = 0; i < ids.size(); ++i) row_of_[ids[i]] = static_cast<int64_t>(i);
}

std::vector<float> FeatureCache::features(int64_t image_id) const {
  auto it = row_of_.find(image_id);
  if (it == row_of_.end())
    throw std::runtime_error("feature cache " + path_ + ": no features for image id " +
                             std::to_string(image_id));
  std::vector<float> out(info_.cells * info_.channels);
  // HDF5 is not reentrant in the default build: one reader at a time.
  static std::mutex hdf5_mutex;
  std::lock_guard<std::mutex> lock(hdf5_mutex);
  file_->read_rows_into("/features", it->second, 1, std::span<float>(out));
  return out;
}

void FeatureCache::check_matches(const FeatureCacheInfo& expected) const {
  auto bad = [&](const std::string& what, const std::string& have, const std::string& want) {
    throw std::runtime_error("feature cache " + path_ + " was built with " + what + " " + have +
                             " but the model uses " + want + "; rebuild it");
  };
  if (info_.encoder != expected.encoder) bad("encoder", info_.encoder, expected.encoder);
  if (info_.image_size != expected.image_size)
    bad("image size", std::to_string(info_.image_size), std::to_string(expected.image_size));
  if (info_.pixel_scaling != expected.pixel_scaling)
    bad("pixel scaling", info_.pixel_scaling, expected.pixel_scaling);
  if (info_.cells != expected.cells || info_.channels != expected.channels)
    bad("feature shape", std::to_string(info_.cells) + "x" + std::to_string(info_.channels),
        std::to_string(expected.cells) + "x" + std::to_string(expected.channels));
  if (info_.weights != expected.weights)
    bad("encoder weights", info_.weights.empty() ? "(unrecorded)" : info_.weights, expected.weights);
}

}  // namespace glimpse
