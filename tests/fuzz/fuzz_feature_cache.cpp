// Fuzz target: the feature cache (io/feature_cache.h): opening a cache file (attributes, shapes,
// the image-id index) and reading the features of a few images, as training does.
#include <memory>

#include "io/feature_cache.h"
#include "tests/fuzz/fuzz_support.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("feature_cache", ".h5");
  const std::string& path = file.write(data, size);
  std::unique_ptr<FeatureCache> cache;
  if (!fuzz::accepts([&] { cache = std::make_unique<FeatureCache>(path); })) return 0;

  // FeatureCache does not list its ids; training gets them from the caption dataset. Take them
  // from the file through the same HDF5 wrapper so the reads below hit rows that exist.
  std::vector<int64_t> ids;
  fuzz::accepts([&] {
    H5File h5 = H5File::open_read(path);
    ids = h5.read_int64("/image_ids", {h5.shape("/image_ids").at(0)});
  });
  const FeatureCacheInfo& info = cache->info();
  int read = 0;
  for (int64_t id : ids) {
    if (read == 3) break;
    // The index was built from this same dataset when the cache opened.
    GLIMPSE_FUZZ_CHECK(cache->contains(id));
    std::vector<float> features;
    if (fuzz::accepts([&] { features = cache->features(id); }))
      GLIMPSE_FUZZ_CHECK(features.size() == static_cast<size_t>(info.cells * info.channels));
    ++read;
  }
  // An id that no seed uses must be refused, not read from some other row.
  if (!cache->contains(-987654321)) GLIMPSE_FUZZ_CHECK(!fuzz::accepts([&] { cache->features(-987654321); }));
  // A cache matches the settings it reports.
  GLIMPSE_FUZZ_CHECK(fuzz::accepts([&] { cache->check_matches(info); }));
  return 0;
}
