// Fuzz target: JPEG decoding from memory (io/image.h decode_jpeg), with both inverse DCTs.
#include "io/image.h"
#include "tests/fuzz/fuzz_support.h"

using namespace glimpse;

namespace {
// What a decoded image promises its users: a positive size within the cap, and exactly
// height * width * 3 bytes (resize and preprocessing index the buffer with those numbers).
void check_image(const Image& image) {
  GLIMPSE_FUZZ_CHECK(image.channels == 3);
  GLIMPSE_FUZZ_CHECK(image.height > 0 && image.height <= kMaxImageSide);
  GLIMPSE_FUZZ_CHECK(image.width > 0 && image.width <= kMaxImageSide);
  GLIMPSE_FUZZ_CHECK(image.pixels.size() == static_cast<size_t>(image.height) * image.width * 3);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Image fast;
  if (!fuzz::accepts([&] { fast = decode_jpeg(data, size, "fuzz-input"); })) return 0;
  check_image(fast);
  // The accurate DCT runs other libjpeg code on the same coefficients; it must accept what the
  // fast one accepted (the header and entropy-coded data are the same) and give the same size.
  Image accurate;
  GLIMPSE_FUZZ_CHECK(fuzz::accepts([&] { accurate = decode_jpeg(data, size, "fuzz-input", JpegDct::Accurate); }));
  check_image(accurate);
  GLIMPSE_FUZZ_CHECK(accurate.height == fast.height && accurate.width == fast.width);
  return 0;
}
