// Fuzz target: an image file as train, eval and cache_features load it for the model
// (io/batches.h load_image_for_model: read_jpeg by path, bilinear resize, pixel scaling).
#include <cmath>

#include "io/batches.h"
#include "tests/fuzz/fuzz_support.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("image_file", ".jpg");
  const std::string& path = file.write(data, size);
  // The size the "tiny" encoder of the shapes demo uses; the Inception scaling is the default.
  constexpr int kSize = 128;
  std::vector<float> pixels;
  if (!fuzz::accepts([&] { pixels = load_image_for_model(path, kSize, PixelScaling::Inception); })) return 0;
  GLIMPSE_FUZZ_CHECK(pixels.size() == static_cast<size_t>(kSize) * kSize * 3);
  // Bilinear interpolation of bytes scaled by x / 127.5 - 1 cannot leave [-1, 1] (a small float
  // margin aside); anything outside means the resize read outside the image.
  for (float v : pixels) GLIMPSE_FUZZ_CHECK(std::isfinite(v) && v >= -1.0001f && v <= 1.0001f);
  return 0;
}
