// 8-bit RGB images on plain buffers: JPEG and PNG reading/writing (libjpeg-turbo, libpng), bilinear
// resizing that reproduces tf.image.resize exactly, and the pixel scaling the image encoder expects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace glimpse {

struct RGB {
  uint8_t r = 0, g = 0, b = 0;
};

// Pixels are stored row by row, each pixel as `channels` consecutive bytes (HWC). Everything in io/
// produces and expects channels == 3 (RGB).
struct Image {
  int height = 0, width = 0, channels = 3;
  std::vector<uint8_t> pixels;

  bool empty() const { return height == 0 || width == 0; }
  uint8_t* at(int y, int x) { return &pixels[(static_cast<size_t>(y) * width + x) * channels]; }
  const uint8_t* at(int y, int x) const { return &pixels[(static_cast<size_t>(y) * width + x) * channels]; }
  RGB pixel(int y, int x) const {
    const uint8_t* p = at(y, x);
    return {p[0], p[1], p[2]};
  }
  void set_pixel(int y, int x, RGB colour) {
    uint8_t* p = at(y, x);
    p[0] = colour.r;
    p[1] = colour.g;
    p[2] = colour.b;
  }
};

// A height x width RGB image filled with one colour. Throws std::invalid_argument on negative sizes.
Image make_image(int height, int width, RGB fill = {0, 0, 0});

// Images with a side above this are rejected before any pixel memory is allocated: a corrupt or
// hostile header could otherwise ask for gigabytes.
inline constexpr int kMaxImageSide = 20000;

// Which inverse DCT libjpeg uses. tf.io.decode_jpeg defaults to the fast integer DCT, so that is our
// default too: the pixels then match what the original TensorFlow pipeline saw. The accurate DCT is
// what Pillow and libjpeg's own tools use; the two differ by a few levels per pixel.
enum class JpegDct { Fast, Accurate };

// Decodes a JPEG to 3-channel RGB. Grayscale is replicated into R, G and B; CMYK/YCCK is converted the
// way tf.io.decode_jpeg does it. Throws std::runtime_error naming the file and the reason for: a
// missing/unreadable/empty file, data that is not a JPEG, a zero or oversized (> kMaxImageSide)
// image, and any truncated or corrupt data (libjpeg's warnings count as errors here, because libjpeg
// would otherwise silently return grey filler for the missing part).
Image read_jpeg(const std::string& path, JpegDct dct = JpegDct::Fast);
Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name_for_errors, JpegDct dct = JpegDct::Fast);

// Encodes with libjpeg's defaults (4:2:0 chroma subsampling, integer DCT), so the same pixels and
// quality give byte-identical files. Writes to a temporary file and renames it into place.
void write_jpeg(const std::string& path, const Image& image, int quality = 90);

// 8-bit RGB PNG, written through a temporary file and renamed into place.
void write_png(const std::string& path, const Image& image);
// Any PNG (palette, grey, 16-bit, alpha) converted to 8-bit RGB; alpha is dropped.
Image read_png(const std::string& path);

// Bilinear resize matching tf.image.resize(method="bilinear", antialias=False) to float rounding:
// half-pixel centres, source coordinate (dst + 0.5) * in / out - 0.5, lower neighbour clamped at 0,
// upper neighbour clamped at in - 1. Returns out_h * out_w * 3 floats (HWC) in [0, 255].
std::vector<float> resize_bilinear(const Image& image, int out_height, int out_width);

// The same resampling for a single-channel float map (e.g. attention weights on a feature grid).
std::vector<float> resize_bilinear_map(const std::vector<float>& map, int height, int width, int out_height,
                                       int out_width);

enum class PixelScaling {
  Inception,  // x / 127.5 - 1, what inception_resnet_v2.preprocess_input does (the default)
  Unit,       // x / 255, what the original notebook does
};
// How checkpoints, feature caches and flags spell it: "inception" | "unit". parse_pixel_scaling
// throws std::invalid_argument naming the field and the allowed values. Inline, so that the
// captioner's config needs no image codec (scripts/gpu builds models/ without libjpeg/libpng).
inline std::string to_string(PixelScaling scaling) {
  switch (scaling) {
    case PixelScaling::Inception: return "inception";
    case PixelScaling::Unit: return "unit";
  }
  throw std::invalid_argument("to_string: not a PixelScaling value");
}
inline PixelScaling parse_pixel_scaling(const std::string& name) {
  if (name == "inception") return PixelScaling::Inception;
  if (name == "unit") return PixelScaling::Unit;
  throw std::invalid_argument("unknown pixel_scaling '" + name + "' (expected inception or unit)");
}

// The encoder's input: resize to size x size (as above), then scale. Returns size * size * 3 floats, HWC.
std::vector<float> preprocess_image(const Image& image, int size, PixelScaling scaling = PixelScaling::Inception);

}  // namespace glimpse
