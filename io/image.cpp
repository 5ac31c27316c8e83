// JPEG/PNG decoding and encoding through libjpeg-turbo and libpng, TF-compatible bilinear resizing and
// encoder preprocessing.
//
// Both C libraries report errors by calling a handler that must not return. We make that handler
// longjmp back to a setjmp in a small function that owns no C++ objects: a longjmp skips destructors,
// and locals changed after setjmp are indeterminate after it, so every buffer and library struct lives
// in the calling function (reached through pointers) and is cleaned up there by RAII.
#include "io/image.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

// jpeglib.h expects FILE and size_t to be declared already, hence after <cstdio>.
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "io/atomic_file.h"

namespace glimpse {

Image make_image(int height, int width, RGB fill) {
  if (height < 0 || width < 0) {
    throw std::invalid_argument("make_image: negative size " + std::to_string(height) + "x" + std::to_string(width));
  }
  Image image;
  image.height = height;
  image.width = width;
  image.channels = 3;
  image.pixels.resize(static_cast<size_t>(height) * width * 3);
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    image.pixels[i] = fill.r;
    image.pixels[i + 1] = fill.g;
    image.pixels[i + 2] = fill.b;
  }
  return image;
}

namespace {

[[noreturn]] void fail(const char* caller, const std::string& name, const std::string& reason) {
  throw std::runtime_error(std::string(caller) + ": " + name + ": " + reason);
}

void check_rgb_image(const char* caller, const std::string& name, const Image& image) {
  if (image.channels != 3) fail(caller, name, "expected 3 channels (RGB), got " + std::to_string(image.channels));
  if (image.height <= 0 || image.width <= 0) {
    fail(caller, name, "empty image (" + std::to_string(image.height) + "x" + std::to_string(image.width) + ")");
  }
  if (image.pixels.size() != static_cast<size_t>(image.height) * image.width * 3) {
    fail(caller, name,
         "pixel buffer holds " + std::to_string(image.pixels.size()) + " bytes, expected " +
             std::to_string(static_cast<size_t>(image.height) * image.width * 3));
  }
}

std::vector<uint8_t> read_whole_file(const char* caller, const std::string& path) {
  std::error_code status_error;
  const auto status = std::filesystem::status(path, status_error);
  if (!std::filesystem::exists(status)) fail(caller, path, "file does not exist");
  if (!std::filesystem::is_regular_file(status)) fail(caller, path, "not a regular file");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) fail(caller, path, std::string("cannot open file (") + std::strerror(errno) + ")");
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof chunk, file)) > 0) bytes.insert(bytes.end(), chunk, chunk + got);
  const bool read_failed = std::ferror(file) != 0;
  std::fclose(file);
  if (read_failed) fail(caller, path, "read error");
  return bytes;
}

bool starts_with_png_signature(const uint8_t* data, size_t size) { return size >= 8 && png_sig_cmp(data, 0, 8) == 0; }

// ---------------------------------------------------------------------------------------------- JPEG

// libjpeg hands our callbacks a pointer to `base`; it is the first member so we can get back to the rest.
struct JpegErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  bool from_warning;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jump_out_of_libjpeg(j_common_ptr cinfo, bool from_warning) {
  auto* errors = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  errors->from_warning = from_warning;
  std::longjmp(errors->jump, 1);
}

void on_libjpeg_error(j_common_ptr cinfo) { jump_out_of_libjpeg(cinfo, false); }

// Warnings (level -1) mostly mean damaged data that libjpeg papered over; only metadata quirks that do
// not affect the pixels are let through. Levels >= 0 are trace messages and are ignored.
void on_libjpeg_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM) {
    cinfo->err->num_warnings++;
    return;
  }
  jump_out_of_libjpeg(cinfo, true);
}

void install_error_manager(JpegErrorManager* errors) {
  jpeg_std_error(&errors->base);
  errors->base.error_exit = on_libjpeg_error;
  errors->base.emit_message = on_libjpeg_message;
  errors->from_warning = false;
  errors->message[0] = '\0';
}

std::string describe_libjpeg_failure(const JpegErrorManager& errors) {
  const std::string detail = std::string("(libjpeg: ") + errors.message + ")";
  switch (errors.base.msg_code) {
    case JWRN_JPEG_EOF:
      return "truncated file " + detail;
    case JERR_NO_SOI:
      return "not a JPEG file " + detail;
    case JERR_EMPTY_IMAGE:
      return "zero-sized image " + detail;
    case JERR_INPUT_EMPTY:
      return "empty file " + detail;
    default:
      return (errors.from_warning ? "corrupt data " : "cannot decode ") + detail;
  }
}

struct JpegDecoder {
  jpeg_decompress_struct cinfo{};  // zeroed: jpeg_destroy_decompress is then safe even if creation failed
  JpegErrorManager errors{};
  JpegDecoder() { cinfo.err = &errors.base; }
  ~JpegDecoder() { jpeg_destroy_decompress(&cinfo); }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;
};

bool read_jpeg_header(JpegDecoder* decoder, const uint8_t* data, size_t size) {
  install_error_manager(&decoder->errors);
  if (setjmp(decoder->errors.jump)) return false;
  jpeg_create_decompress(&decoder->cinfo);
  decoder->cinfo.err = &decoder->errors.base;
  jpeg_mem_src(&decoder->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&decoder->cinfo, TRUE);
  return true;
}

// Decodes into `rgb`, which grows a row at a time (to height * width * 3 bytes): a tiny file
// whose header declares 20000 x 20000 pixels fails at its first missing row (libjpeg's premature-
// end warning is an error here) having allocated only the rows it really held, not 1.2 GB.
// `cmyk_row` (width * 4 bytes) is scratch space used only for CMYK/YCCK files, which libjpeg can
// hand out as CMYK but not convert to RGB.
bool decompress_jpeg(JpegDecoder* decoder, J_DCT_METHOD dct_method, std::vector<uint8_t>& rgb, uint8_t* cmyk_row) {
  jpeg_decompress_struct* cinfo = &decoder->cinfo;
  if (setjmp(decoder->errors.jump)) return false;
  const bool is_cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  // libjpeg-turbo converts greyscale and YCbCr to RGB itself. Fancy (smooth) chroma upsampling is
  // libjpeg's default and tf.io.decode_jpeg's too.
  cinfo->out_color_space = is_cmyk ? JCS_CMYK : JCS_RGB;
  cinfo->dct_method = dct_method;
  cinfo->do_fancy_upsampling = TRUE;
  jpeg_start_decompress(cinfo);
  const JDIMENSION width = cinfo->output_width;
  while (cinfo->output_scanline < cinfo->output_height) {
    const size_t row_start = static_cast<size_t>(cinfo->output_scanline) * width * 3;
    rgb.resize(row_start + static_cast<size_t>(width) * 3);  // geometric growth: amortised O(1)
    uint8_t* out_row = rgb.data() + row_start;
    JSAMPROW target = is_cmyk ? cmyk_row : out_row;
    jpeg_read_scanlines(cinfo, &target, 1);
    if (!is_cmyk) continue;
    // Adobe (Photoshop) files store inverted inks, so a stored value v means ink 255 - v and
    // R = (255 - C)(255 - K) / 255 becomes C_stored * K_stored / 255. Same integer formula as TF.
    for (JDIMENSION x = 0; x < width; ++x) {
      const int c = cmyk_row[4 * x], m = cmyk_row[4 * x + 1], y = cmyk_row[4 * x + 2], k = cmyk_row[4 * x + 3];
      if (cinfo->saw_Adobe_marker) {
        out_row[3 * x] = static_cast<uint8_t>(k * c / 255);
        out_row[3 * x + 1] = static_cast<uint8_t>(k * m / 255);
        out_row[3 * x + 2] = static_cast<uint8_t>(k * y / 255);
      } else {
        out_row[3 * x] = static_cast<uint8_t>((255 - k) * (255 - c) / 255);
        out_row[3 * x + 1] = static_cast<uint8_t>((255 - k) * (255 - m) / 255);
        out_row[3 * x + 2] = static_cast<uint8_t>((255 - k) * (255 - y) / 255);
      }
    }
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

Image decode_jpeg_for(const char* caller, const uint8_t* data, size_t size, const std::string& name, JpegDct dct) {
  if (size == 0) fail(caller, name, "empty file");
  if (starts_with_png_signature(data, size)) fail(caller, name, "not a JPEG file (it is a PNG)");
  if (size < 2 || data[0] != 0xFF || data[1] != 0xD8) {
    fail(caller, name, "not a JPEG file (does not start with the JPEG start-of-image marker FF D8)");
  }
  JpegDecoder decoder;
  if (!read_jpeg_header(&decoder, data, size)) fail(caller, name, describe_libjpeg_failure(decoder.errors));

  const long long width = decoder.cinfo.image_width, height = decoder.cinfo.image_height;
  if (width <= 0 || height <= 0) {
    fail(caller, name, "zero-sized image (" + std::to_string(width) + "x" + std::to_string(height) + ")");
  }
  if (width > kMaxImageSide || height > kMaxImageSide) {
    fail(caller, name,
         "image too large (" + std::to_string(width) + " x " + std::to_string(height) +
             " pixels, width x height; the largest side allowed is " + std::to_string(kMaxImageSide) + ")");
  }

  Image image;
  image.height = static_cast<int>(height);
  image.width = static_cast<int>(width);
  image.channels = 3;
  std::vector<uint8_t> cmyk_row(static_cast<size_t>(width) * 4);
  const J_DCT_METHOD dct_method = dct == JpegDct::Fast ? JDCT_IFAST : JDCT_ISLOW;
  if (!decompress_jpeg(&decoder, dct_method, image.pixels, cmyk_row.data())) {
    fail(caller, name, describe_libjpeg_failure(decoder.errors));
  }
  // No scaling was requested, so libjpeg must hand back exactly the header's size.
  if (decoder.cinfo.output_width != width || decoder.cinfo.output_height != height ||
      image.pixels.size() != static_cast<size_t>(height) * width * 3) {
    fail(caller, name, "decoder produced an unexpected size");
  }
  return image;
}

struct JpegEncoder {
  jpeg_compress_struct cinfo{};
  JpegErrorManager errors{};
  JpegEncoder() { cinfo.err = &errors.base; }
  ~JpegEncoder() { jpeg_destroy_compress(&cinfo); }
  JpegEncoder(const JpegEncoder&) = delete;
  JpegEncoder& operator=(const JpegEncoder&) = delete;
};

bool encode_jpeg(JpegEncoder* encoder, std::FILE* file, const Image* image, int quality) {
  install_error_manager(&encoder->errors);
  if (setjmp(encoder->errors.jump)) return false;
  jpeg_compress_struct* cinfo = &encoder->cinfo;
  jpeg_create_compress(cinfo);
  cinfo->err = &encoder->errors.base;
  jpeg_stdio_dest(cinfo, file);
  cinfo->image_width = static_cast<JDIMENSION>(image->width);
  cinfo->image_height = static_cast<JDIMENSION>(image->height);
  cinfo->input_components = 3;
  cinfo->in_color_space = JCS_RGB;
  jpeg_set_defaults(cinfo);
  cinfo->dct_method = JDCT_ISLOW;
  jpeg_set_quality(cinfo, quality, TRUE);
  jpeg_start_compress(cinfo, TRUE);
  while (cinfo->next_scanline < cinfo->image_height) {
    // libjpeg's API is not const-correct; it only reads the rows.
    JSAMPROW row = const_cast<JSAMPLE*>(image->at(static_cast<int>(cinfo->next_scanline), 0));
    jpeg_write_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_compress(cinfo);
  return true;
}

// ----------------------------------------------------------------------------------------------- PNG

struct PngErrorState {
  char message[256];
};

[[noreturn]] void on_libpng_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof state->message, "%s", message);
  png_longjmp(png, 1);
}

void on_libpng_warning(png_structp, png_const_charp) {}

bool encode_png(std::FILE* file, const Image* image, png_bytep* rows, PngErrorState* errors) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, errors, on_libpng_error, on_libpng_warning);
  if (png == nullptr) {
    std::snprintf(errors->message, sizeof errors->message, "cannot create the libpng writer");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(errors->message, sizeof errors->message, "cannot create the libpng info struct");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image->width), static_cast<png_uint_32>(image->height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

struct PngMemoryReader {
  const uint8_t* data;
  size_t size;
  size_t position;
};

void read_png_bytes(png_structp png, png_bytep out, png_size_t count) {
  auto* reader = static_cast<PngMemoryReader*>(png_get_io_ptr(png));
  if (count > reader->size - reader->position) png_error(png, "truncated file");
  std::memcpy(out, reader->data + reader->position, count);
  reader->position += count;
}

struct PngDecoder {
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngErrorState errors{};
  PngMemoryReader reader{};
  ~PngDecoder() {
    if (png != nullptr) png_destroy_read_struct(&png, &info, nullptr);
  }
};

// Reads the header and asks libpng to deliver 8-bit RGB whatever the file's format.
bool read_png_header(PngDecoder* decoder) {
  if (setjmp(png_jmpbuf(decoder->png))) return false;
  png_structp png = decoder->png;
  png_infop info = decoder->info;
  png_set_read_fn(png, &decoder->reader, read_png_bytes);
  png_read_info(png, info);
  png_set_expand(png);  // palette -> RGB, grey below 8 bits -> 8 bits, tRNS -> alpha
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  return true;
}

bool read_png_pixels(PngDecoder* decoder, png_bytep* rows) {
  if (setjmp(png_jmpbuf(decoder->png))) return false;
  png_read_image(decoder->png, rows);
  png_read_end(decoder->png, nullptr);
  return true;
}

// ------------------------------------------------------------------------------------------- resize

struct SourceTap {
  int lower, upper;
  float lerp;
};

// One entry per output index, computed exactly as TensorFlow's ResizeBilinear kernel does it with
// half_pixel_centers=True (float arithmetic included, so the results agree to the last few bits).
std::vector<SourceTap> bilinear_taps(int in_size, int out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  std::vector<SourceTap> taps(out_size);
  for (int i = 0; i < out_size; ++i) {
    // TF's kernel rounds the product to float before subtracting. Left alone, g++ -march=native may
    // fuse the two into one FMA (GCC contracts across statements by default), which moves `source`
    // by an ulp and the output by up to ~1e-3; storing through a volatile forces the rounding.
    volatile float scaled = (static_cast<float>(i) + 0.5f) * scale;
    const float source = scaled - 0.5f;
    const float source_floor = std::floor(source);
    taps[i].lower = std::max(static_cast<int>(source_floor), 0);
    taps[i].upper = std::min(static_cast<int>(std::ceil(source)), in_size - 1);
    taps[i].lerp = source - source_floor;
  }
  return taps;
}

// Interpolates along x first, then y, in the same order as TensorFlow.
template <typename Pixel>
std::vector<float> resize_bilinear_planar(const Pixel* input, int height, int width, int channels, int out_height,
                                          int out_width) {
  const std::vector<SourceTap> ys = bilinear_taps(height, out_height);
  const std::vector<SourceTap> xs = bilinear_taps(width, out_width);
  std::vector<float> output(static_cast<size_t>(out_height) * out_width * channels);
  for (int oy = 0; oy < out_height; ++oy) {
    const Pixel* top_row = input + static_cast<size_t>(ys[oy].lower) * width * channels;
    const Pixel* bottom_row = input + static_cast<size_t>(ys[oy].upper) * width * channels;
    const float y_lerp = ys[oy].lerp;
    float* out = output.data() + static_cast<size_t>(oy) * out_width * channels;
    for (int ox = 0; ox < out_width; ++ox) {
      const int left = xs[ox].lower * channels, right = xs[ox].upper * channels;
      const float x_lerp = xs[ox].lerp;
      for (int c = 0; c < channels; ++c) {
        const float top_left = static_cast<float>(top_row[left + c]);
        const float top_right = static_cast<float>(top_row[right + c]);
        const float bottom_left = static_cast<float>(bottom_row[left + c]);
        const float bottom_right = static_cast<float>(bottom_row[right + c]);
        const float top = top_left + (top_right - top_left) * x_lerp;
        const float bottom = bottom_left + (bottom_right - bottom_left) * x_lerp;
        out[ox * channels + c] = top + (bottom - top) * y_lerp;
      }
    }
  }
  return output;
}

void check_output_size(const char* caller, int out_height, int out_width) {
  if (out_height <= 0 || out_width <= 0) {
    throw std::invalid_argument(std::string(caller) + ": output size must be positive, got " +
                                std::to_string(out_height) + "x" + std::to_string(out_width));
  }
}

}  // namespace

Image read_jpeg(const std::string& path, JpegDct dct) {
  const std::vector<uint8_t> bytes = read_whole_file("read_jpeg", path);
  return decode_jpeg_for("read_jpeg", bytes.data(), bytes.size(), path, dct);
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name_for_errors, JpegDct dct) {
  return decode_jpeg_for("decode_jpeg", data, size, name_for_errors, dct);
}

void write_jpeg(const std::string& path, const Image& image, int quality) {
  check_rgb_image("write_jpeg", path, image);
  if (quality < 1 || quality > 100)
    fail("write_jpeg", path, "quality must be in 1..100, got " + std::to_string(quality));
  const std::string temporary = temporary_path_for(path);
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) fail("write_jpeg", path, std::string("cannot create file (") + std::strerror(errno) + ")");
  bool encoded = false;
  std::string reason;
  {
    JpegEncoder encoder;
    encoded = encode_jpeg(&encoder, file, &image, quality);
    if (!encoded) reason = std::string("libjpeg: ") + encoder.errors.message;
  }
  // libjpeg's stdio destination uses fwrite and only notices some failures at close time.
  const bool write_failed = std::ferror(file) != 0;
  const bool close_failed = std::fclose(file) != 0;
  if (!encoded || write_failed || close_failed) {
    std::remove(temporary.c_str());
    fail("write_jpeg", path, "write failed (" + (encoded ? std::string(std::strerror(errno)) : reason) + ")");
  }
  commit_temporary_file(temporary, path, "write_jpeg");
}

void write_png(const std::string& path, const Image& image) {
  check_rgb_image("write_png", path, image);
  std::vector<png_bytep> rows(image.height);
  for (int y = 0; y < image.height; ++y) rows[y] = const_cast<png_bytep>(image.at(y, 0));
  const std::string temporary = temporary_path_for(path);
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) fail("write_png", path, std::string("cannot create file (") + std::strerror(errno) + ")");
  PngErrorState errors{};
  const bool encoded = encode_png(file, &image, rows.data(), &errors);
  const bool write_failed = std::ferror(file) != 0;
  const bool close_failed = std::fclose(file) != 0;
  if (!encoded || write_failed || close_failed) {
    std::remove(temporary.c_str());
    fail("write_png", path,
         "write failed (" + (encoded ? std::string(std::strerror(errno)) : "libpng: " + std::string(errors.message)) +
             ")");
  }
  commit_temporary_file(temporary, path, "write_png");
}

Image read_png(const std::string& path) {
  const std::vector<uint8_t> bytes = read_whole_file("read_png", path);
  if (bytes.empty()) fail("read_png", path, "empty file");
  if (!starts_with_png_signature(bytes.data(), bytes.size())) fail("read_png", path, "not a PNG file");

  PngDecoder decoder;
  decoder.reader = {bytes.data(), bytes.size(), 0};
  decoder.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &decoder.errors, on_libpng_error, on_libpng_warning);
  if (decoder.png == nullptr) fail("read_png", path, "cannot create the libpng reader");
  decoder.info = png_create_info_struct(decoder.png);
  if (decoder.info == nullptr) fail("read_png", path, "cannot create the libpng info struct");
  // Cap the size before libpng allocates anything, like the JPEG reader does.
  png_set_user_limits(decoder.png, kMaxImageSide, kMaxImageSide);
  if (!read_png_header(&decoder)) fail("read_png", path, std::string("libpng: ") + decoder.errors.message);

  Image image;
  image.height = static_cast<int>(png_get_image_height(decoder.png, decoder.info));
  image.width = static_cast<int>(png_get_image_width(decoder.png, decoder.info));
  image.channels = 3;
  if (png_get_rowbytes(decoder.png, decoder.info) != static_cast<size_t>(image.width) * 3) {
    fail("read_png", path, "unexpected row layout after conversion to 8-bit RGB");
  }
  image.pixels.resize(static_cast<size_t>(image.height) * image.width * 3);
  std::vector<png_bytep> rows(image.height);
  for (int y = 0; y < image.height; ++y) rows[y] = image.at(y, 0);
  if (!read_png_pixels(&decoder, rows.data())) fail("read_png", path, std::string("libpng: ") + decoder.errors.message);
  return image;
}

std::vector<float> resize_bilinear(const Image& image, int out_height, int out_width) {
  check_rgb_image("resize_bilinear", "input", image);
  check_output_size("resize_bilinear", out_height, out_width);
  return resize_bilinear_planar(image.pixels.data(), image.height, image.width, 3, out_height, out_width);
}

std::vector<float> resize_bilinear_map(const std::vector<float>& map, int height, int width, int out_height,
                                       int out_width) {
  if (height <= 0 || width <= 0 || map.size() != static_cast<size_t>(height) * width) {
    throw std::invalid_argument("resize_bilinear_map: map holds " + std::to_string(map.size()) +
                                " values, expected a positive " + std::to_string(height) + "x" + std::to_string(width) +
                                " grid");
  }
  check_output_size("resize_bilinear_map", out_height, out_width);
  return resize_bilinear_planar(map.data(), height, width, 1, out_height, out_width);
}

std::vector<float> preprocess_image(const Image& image, int size, PixelScaling scaling) {
  std::vector<float> pixels = resize_bilinear(image, size, size);
  // Same float operations, in the same order, as the Keras preprocessing functions.
  if (scaling == PixelScaling::Inception) {
    for (float& v : pixels) v = v / 127.5f - 1.0f;
  } else {
    for (float& v : pixels) v = v / 255.0f;
  }
  return pixels;
}

}  // namespace glimpse
