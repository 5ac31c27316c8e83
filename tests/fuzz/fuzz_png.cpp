// Fuzz target: PNG decoding (io/image.h read_png). read_png only reads by path, so the input is
// written to a per-process temporary file first.
#include "io/image.h"
#include "tests/fuzz/fuzz_support.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("png", ".png");
  const std::string& path = file.write(data, size);
  Image image;
  if (!fuzz::accepts([&] { image = read_png(path); })) return 0;
  // Every PNG flavour (palette, grey, 16-bit, alpha, interlaced) must come out as 8-bit RGB of
  // the header's size, within the cap set before libpng allocates.
  GLIMPSE_FUZZ_CHECK(image.channels == 3);
  GLIMPSE_FUZZ_CHECK(image.height > 0 && image.height <= kMaxImageSide);
  GLIMPSE_FUZZ_CHECK(image.width > 0 && image.width <= kMaxImageSide);
  GLIMPSE_FUZZ_CHECK(image.pixels.size() == static_cast<size_t>(image.height) * image.width * 3);
  return 0;
}
