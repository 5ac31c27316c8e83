// A feature cache: the frozen encoder's output for every image of a split, computed once and kept
// in an HDF5 file, so the decoder trains without re-running Inception-ResNet-v2 every epoch.
//
// Layout: /features [N, cells, C] (float16 or float32, chunked one image per chunk),
//         /image_ids [N] int64, attrs encoder, image_size, pixel_scaling, cells, channels,
//         weights.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/hdf5.h"
#include "tensor/tensor.h"

namespace glimpse {

struct FeatureCacheInfo {
  std::string encoder;
  int image_size = 0;
  std::string pixel_scaling;
  int64_t cells = 0, channels = 0;
  // Fingerprint of the encoder's weights (nn::Module::fingerprint): features from other weights
  // (random ones, another file) would silently train a decoder the checkpoint cannot reproduce.
  std::string weights;
};

class FeatureCache {
 public:
  // Builds a cache: `encode(first, count)` returns features [count, cells, C] for images
  // first..first+count-1 of `image_ids`. Written atomically.
  static void build(const std::string& path, const std::vector<int64_t>& image_ids,
                    const FeatureCacheInfo& info, bool float16, int batch_size,
                    const std::function<Tensor(size_t first, size_t count)>& encode,
                    const std::function<void(size_t done, size_t total)>& progress = {});

  explicit FeatureCache(const std::string& path);
  const FeatureCacheInfo& info() const { return info_; }
  bool contains(int64_t image_id) const { return row_of_.count(image_id) > 0; }
  // Features [cells, C] of one image (throws naming the id when absent).
  std::vector<float> features(int64_t image_id) const;
  // Checks that the cache was made by the given encoder settings (throws naming the difference).
  void check_matches(const FeatureCacheInfo& expected) const;

 private:
  std::string path_;
  std::unique_ptr<H5File> file_;
  FeatureCacheInfo info_;
  std::map<int64_t, int64_t> row_of_;
};

}  // namespace glimpse
