// Tests of io/image, io/draw, io/bitmap_font and io/plot. JPEG decoding and bilinear resizing are
// compared with fixtures written by real TensorFlow (tests/golden/gen_image_fixtures.py); the damaged
// files under tests/data/bad_images come from the same script.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "io/bitmap_font.h"
#include "io/draw.h"
#include "io/image.h"
#include "io/plot.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace {

const std::string kData = std::string(GLIMPSE_TEST_DATA) + "/data";

std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  REQUIRE_MESSAGE(file.good(), "cannot open " << path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

// A minimal reader for the .npy files numpy.save writes (format 1.0/2.0, C order, little endian),
// enough for uint8 ('|u1') and float32 ('<f4') arrays.
struct NpyArray {
  std::string dtype;
  std::vector<size_t> shape;
  std::string data;

  size_t count() const {
    size_t n = 1;
    for (size_t d : shape) n *= d;
    return n;
  }
  std::vector<float> floats() const {
    REQUIRE(dtype == "<f4");
    std::vector<float> values(count());
    std::memcpy(values.data(), data.data(), values.size() * sizeof(float));
    return values;
  }
  std::vector<uint8_t> bytes() const {
    REQUIRE(dtype == "|u1");
    return std::vector<uint8_t>(data.begin(), data.end());
  }
};

NpyArray load_npy(const std::string& path) {
  const std::string file = read_bytes(path);
  REQUIRE_MESSAGE(file.compare(0, 6, "\x93NUMPY") == 0, path << " is not a .npy file");
  const int major = static_cast<unsigned char>(file[6]);
  size_t header_length = 0, header_start = 0;
  if (major == 1) {
    header_length = static_cast<unsigned char>(file[8]) | (static_cast<unsigned char>(file[9]) << 8);
    header_start = 10;
  } else {
    for (int i = 0; i < 4; ++i)
      header_length |= static_cast<size_t>(static_cast<unsigned char>(file[8 + i])) << (8 * i);
    header_start = 12;
  }
  const std::string header = file.substr(header_start, header_length);
  NpyArray array;
  const size_t descr = header.find("'descr': '") + 10;
  array.dtype = header.substr(descr, header.find('\'', descr) - descr);
  REQUIRE_MESSAGE(header.find("'fortran_order': False") != std::string::npos, path << " is not C-ordered");
  const size_t open = header.find('(', header.find("'shape'")), close = header.find(')', open);
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string dim;
  while (std::getline(dims, dim, ',')) {
    if (dim.find_first_not_of(' ') != std::string::npos) array.shape.push_back(std::stoul(dim));
  }
  array.data = file.substr(header_start + header_length);
  const size_t item = array.dtype == "<f4" ? 4 : 1;
  REQUIRE_MESSAGE(array.data.size() == array.count() * item, path << ": data size does not match the shape");
  return array;
}

Image image_from_npy(const NpyArray& array) {
  REQUIRE(array.shape.size() == 3);
  REQUIRE(array.shape[2] == 3);
  Image image;
  image.height = static_cast<int>(array.shape[0]);
  image.width = static_cast<int>(array.shape[1]);
  image.pixels = array.bytes();
  return image;
}

Image random_image(int height, int width, unsigned seed) {
  std::mt19937 generator(seed);
  Image image = make_image(height, width);
  for (uint8_t& value : image.pixels) value = static_cast<uint8_t>(generator() & 0xFF);
  return image;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

int count_pixels_not(const Image& image, RGB colour) {
  int count = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const RGB p = image.pixel(y, x);
      if (p.r != colour.r || p.g != colour.g || p.b != colour.b) ++count;
    }
  }
  return count;
}

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) {
    path = fs::temp_directory_path() / ("glimpse_test_image_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

}  // namespace

TEST_CASE("read_jpeg decodes RGB, progressive, grayscale and CMYK files like tf.io.decode_jpeg") {
  const char* names[] = {"rgb_37x45",  "rgb_444_20x16",    "progressive_33x29",
                         "gray_23x31", "cmyk_adobe_21x19", "cmyk_plain_21x19"};
  struct Method {
    JpegDct dct;
    const char* fixture_suffix;
  };
  // The default matches TF's default DCT; Accurate matches dct_method="INTEGER_ACCURATE".
  const Method methods[] = {{JpegDct::Fast, ".tf.npy"}, {JpegDct::Accurate, ".tf_accurate.npy"}};
  for (const Method& method : methods) {
    for (const char* name : names) {
      const std::string label = std::string(name) + method.fixture_suffix;
      CAPTURE(label);
      const Image decoded = method.dct == JpegDct::Fast ? read_jpeg(kData + "/images/" + name + ".jpg")
                                                        : read_jpeg(kData + "/images/" + name + ".jpg", method.dct);
      const NpyArray expected = load_npy(kData + "/images/" + name + method.fixture_suffix);
      REQUIRE(decoded.channels == 3);
      REQUIRE(decoded.height == static_cast<int>(expected.shape[0]));
      REQUIRE(decoded.width == static_cast<int>(expected.shape[1]));
      const std::vector<uint8_t> reference = expected.bytes();
      int worst = 0, differing = 0;
      for (size_t i = 0; i < reference.size(); ++i) {
        const int difference = std::abs(int(decoded.pixels[i]) - int(reference[i]));
        worst = std::max(worst, difference);
        differing += difference != 0;
      }
      // Both sides are libjpeg-turbo with the same DCT and upsampling; allow one level for
      // differences between library builds (SIMD versus C code paths).
      CHECK(worst <= 1);
      CHECK(differing <= static_cast<int>(reference.size()) / 100);
    }
  }
}

TEST_CASE("grayscale JPEGs come out with equal R, G and B") {
  const Image image = read_jpeg(kData + "/images/gray_23x31.jpg");
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    REQUIRE(image.pixels[i] == image.pixels[i + 1]);
    REQUIRE(image.pixels[i] == image.pixels[i + 2]);
  }
}

TEST_CASE("decode_jpeg works on memory and names the buffer in errors") {
  const std::string bytes = read_bytes(kData + "/images/rgb_37x45.jpg");
  const Image from_memory = decode_jpeg(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "buffer#1");
  CHECK(from_memory.pixels == read_jpeg(kData + "/images/rgb_37x45.jpg").pixels);
  const std::string message =
      error_of([&] { decode_jpeg(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size() / 2, "buffer#1"); });
  CHECK(message.find("decode_jpeg: buffer#1") != std::string::npos);
  CHECK(message.find("truncated") != std::string::npos);
}

TEST_CASE("a tiny JPEG declaring 20000 x 20000 pixels fails without allocating the whole image") {
  // The 37x45 file's start-of-frame header rewritten to 20000 x 20000: its data covers a few
  // rows, then the decoder reports the premature end. The pixel buffer must only have grown by
  // the rows decoded, not by the 1.2 GB the header declares (measured: peak memory before/after).
  std::string bytes = read_bytes(kData + "/images/rgb_37x45.jpg");
  const size_t sof = bytes.find("\xFF\xC0");
  REQUIRE(sof != std::string::npos);
  for (size_t field : {sof + 5, sof + 7}) {  // height, then width, big-endian
    bytes[field] = static_cast<char>(20000 >> 8);
    bytes[field + 1] = static_cast<char>(20000 & 0xFF);
  }
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  const std::string message =
      error_of([&] { decode_jpeg(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "declared-huge"); });
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  CHECK(message.find("decode_jpeg: declared-huge") != std::string::npos);
  const long grown_kb = after.ru_maxrss - before.ru_maxrss;
  CHECK_MESSAGE(grown_kb < 200 * 1024, "peak memory grew by " << grown_kb / 1024 << " MB");
}

TEST_CASE("damaged and hostile files are rejected with the file and the reason named") {
  struct Case {
    const char* file;
    const char* reason;
  };
  const Case cases[] = {
      {"truncated.jpg", "truncated file"},     {"corrupt_middle.jpg", "corrupt data"},
      {"text.jpg", "not a JPEG file"},         {"empty.jpg", "empty file"},
      {"png_named.jpg", "it is a PNG"},        {"huge_30000x10.jpg", "image too large (30000 x 10"},
      {"zero_height.jpg", "zero-sized image"}, {"does_not_exist.jpg", "file does not exist"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.file);
    const std::string path = kData + "/bad_images/" + c.file;
    const std::string message = error_of([&] { read_jpeg(path); });
    CHECK_MESSAGE(message.find("read_jpeg: " + path + ": ") == 0, message);
    CHECK_MESSAGE(message.find(c.reason) != std::string::npos, message);
  }
  CHECK(error_of([&] { read_jpeg(kData + "/bad_images"); }).find("not a regular file") != std::string::npos);
}

TEST_CASE("resize_bilinear matches tf.image.resize(bilinear, antialias=False)") {
  const nlohmann::json manifest = nlohmann::json::parse(read_bytes(kData + "/resize/manifest.json"));
  REQUIRE(manifest.size() >= 8);
  for (const auto& entry : manifest) {
    const std::string input_name = entry["input"];
    CAPTURE(input_name);
    const Image input = image_from_npy(load_npy(kData + "/resize/" + input_name));
    const NpyArray expected_array = load_npy(kData + "/resize/" + entry["expected"].get<std::string>());
    const std::vector<float> expected = expected_array.floats();
    const int out_height = entry["out_height"], out_width = entry["out_width"], stride = entry["stride"];
    const std::vector<float> resized = resize_bilinear(input, out_height, out_width);
    REQUIRE(resized.size() == static_cast<size_t>(out_height) * out_width * 3);
    // The fixture keeps every stride-th row and column of TF's output.
    const int rows = static_cast<int>(expected_array.shape[0]), columns = static_cast<int>(expected_array.shape[1]);
    REQUIRE(rows == (out_height + stride - 1) / stride);
    REQUIRE(columns == (out_width + stride - 1) / stride);
    double worst = 0.0;
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < columns; ++c) {
        for (int k = 0; k < 3; ++k) {
          const float mine = resized[(static_cast<size_t>(r * stride) * out_width + c * stride) * 3 + k];
          const float theirs = expected[(static_cast<size_t>(r) * columns + c) * 3 + k];
          worst = std::max(worst, static_cast<double>(std::fabs(mine - theirs)));
        }
      }
    }
    CHECK(worst <= 1e-4);
  }
}

TEST_CASE("preprocess_image matches TF resize followed by the Keras scalings") {
  const Image input = image_from_npy(load_npy(kData + "/resize/preprocess.in.npy"));
  const std::vector<float> inception = load_npy(kData + "/resize/preprocess_inception_23.out.npy").floats();
  const std::vector<float> unit = load_npy(kData + "/resize/preprocess_unit_23.out.npy").floats();
  const std::vector<float> mine_inception = preprocess_image(input, 23);  // Inception is the default
  const std::vector<float> mine_unit = preprocess_image(input, 23, PixelScaling::Unit);
  REQUIRE(mine_inception.size() == inception.size());
  REQUIRE(mine_unit.size() == unit.size());
  for (size_t i = 0; i < inception.size(); ++i) {
    REQUIRE(std::fabs(mine_inception[i] - inception[i]) <= 1e-6f);
    REQUIRE(std::fabs(mine_unit[i] - unit[i]) <= 1e-6f);
  }
  CHECK(*std::min_element(mine_inception.begin(), mine_inception.end()) >= -1.0f);
  CHECK(*std::max_element(mine_inception.begin(), mine_inception.end()) <= 1.0f);
}

TEST_CASE("resize_bilinear_map resamples a single channel exactly like the RGB path") {
  const Image source = random_image(5, 7, 3);
  const std::vector<float> rgb = resize_bilinear(source, 11, 4);
  for (int channel = 0; channel < 3; ++channel) {
    std::vector<float> plane(5 * 7);
    for (size_t i = 0; i < plane.size(); ++i) plane[i] = source.pixels[i * 3 + channel];
    const std::vector<float> resized = resize_bilinear_map(plane, 5, 7, 11, 4);
    for (size_t i = 0; i < resized.size(); ++i) REQUIRE(resized[i] == rgb[i * 3 + channel]);
  }
  CHECK_THROWS_AS(resize_bilinear_map(std::vector<float>(3, 0.0f), 2, 2, 4, 4), std::invalid_argument);
}

TEST_CASE("PNG round trip, and writing leaves no temporary file behind") {
  ScratchDir dir("png");
  const Image original = random_image(13, 29, 7);
  const std::string path = (dir.path / "picture.png").string();
  write_png(path, original);
  const Image loaded = read_png(path);
  CHECK(loaded.height == 13);
  CHECK(loaded.width == 29);
  CHECK(loaded.pixels == original.pixels);
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) entries += entry.is_regular_file();
  CHECK(entries == 1);

  const std::string message = error_of([&] { write_png((dir.path / "missing" / "x.png").string(), original); });
  CHECK(message.find("write_png: " + (dir.path / "missing" / "x.png").string()) == 0);
  CHECK(error_of([&] { read_png(kData + "/bad_images/text.jpg"); }).find("not a PNG file") != std::string::npos);
}

TEST_CASE("write_jpeg is deterministic and decodes back close to the original") {
  ScratchDir dir("jpeg");
  Image smooth = make_image(40, 56);
  for (int y = 0; y < 40; ++y) {
    for (int x = 0; x < 56; ++x) {
      smooth.set_pixel(y, x,
                       {static_cast<uint8_t>(4 * x), static_cast<uint8_t>(5 * y), static_cast<uint8_t>(100 + x + y)});
    }
  }
  const std::string first = (dir.path / "a.jpg").string(), second = (dir.path / "b.jpg").string();
  write_jpeg(first, smooth, 95);
  write_jpeg(second, smooth, 95);
  CHECK(read_bytes(first) == read_bytes(second));
  const Image decoded = read_jpeg(first);
  REQUIRE(decoded.pixels.size() == smooth.pixels.size());
  double total_error = 0.0;
  for (size_t i = 0; i < smooth.pixels.size(); ++i)
    total_error += std::abs(int(decoded.pixels[i]) - int(smooth.pixels[i]));
  CHECK(total_error / smooth.pixels.size() < 3.0);
  CHECK_THROWS_AS(write_jpeg(first, smooth, 0), std::runtime_error);
}

TEST_CASE("every printable ASCII character has its own glyph") {
  const font::GlyphRows& missing = font::glyph('\x01');
  for (int code = 33; code <= 126; ++code) {
    CAPTURE(static_cast<char>(code));
    CHECK(font::glyph(static_cast<char>(code)) != missing);
  }
  for (int a = 33; a <= 126; ++a) {
    for (int b = a + 1; b <= 126; ++b) {
      CAPTURE(static_cast<char>(a));
      CAPTURE(static_cast<char>(b));
      CHECK(font::glyph(static_cast<char>(a)) != font::glyph(static_cast<char>(b)));
    }
  }
}

TEST_CASE("draw_text puts ink only inside its measured box") {
  const RGB white{255, 255, 255}, red{200, 0, 0};
  Image canvas = make_image(60, 200, white);
  const std::string text = "a <start> 42, Loss!";
  draw_text(canvas, 10, 20, text, 2, red);
  const int width = text_width(text, 2), height = text_height(text, 2);
  CHECK(width == (static_cast<int>(text.size()) * font::kAdvance - 1) * 2);
  CHECK(height == font::kGlyphHeight * 2);
  int inside = 0, outside = 0;
  for (int y = 0; y < canvas.height; ++y) {
    for (int x = 0; x < canvas.width; ++x) {
      const RGB p = canvas.pixel(y, x);
      if (p.r == white.r && p.g == white.g && p.b == white.b) continue;
      CHECK((p.r == red.r && p.g == red.g && p.b == red.b));
      const bool in_box = x >= 10 && x < 10 + width && y >= 20 && y < 20 + height;
      (in_box ? inside : outside)++;
    }
  }
  CHECK(inside > 100);
  CHECK(outside == 0);
  // Every pixel of a scaled glyph is a full scale x scale block: the ink count is a multiple of 4.
  CHECK(inside % 4 == 0);
  // Text running off the image is clipped instead of writing out of bounds.
  draw_text(canvas, 190, 55, "clipped", 3, red);
  draw_text(canvas, -30, -10, "clipped", 3, red);
  CHECK(text_width("ab\nabcd", 1) == 4 * font::kAdvance - 1);
  CHECK(text_height("ab\nabcd", 1) == font::kLineHeight + font::kGlyphHeight);
}

TEST_CASE("tile_images lays images out on a padded grid") {
  const Image a = make_image(10, 20, {255, 0, 0}), b = make_image(15, 5, {0, 255, 0}),
              c = make_image(4, 4, {0, 0, 255});
  const RGB background{9, 9, 9};
  const Image grid = tile_images({a, b, c}, 2, 3, background);
  // Cells are 15 tall and 20 wide; two columns, two rows.
  CHECK(grid.width == 2 * 20 + 3 * 3);
  CHECK(grid.height == 2 * 15 + 3 * 3);
  CHECK(grid.pixel(3, 3).r == 255);           // a's top-left
  CHECK(grid.pixel(3 + 9, 3 + 19).r == 255);  // a's bottom-right
  CHECK(grid.pixel(3 + 10, 3).r == 9);        // below a, still in its cell: background
  CHECK(grid.pixel(3, 3 + 20 + 3).g == 255);  // b's top-left in the second column
  CHECK(grid.pixel(3 + 15 + 3, 3).b == 255);  // c starts the second row
  CHECK(grid.pixel(0, 0).r == 9);
  const Image single_row = tile_images({c, c}, 5, 1);
  CHECK(single_row.width == 2 * 4 + 3);
  CHECK(single_row.height == 4 + 2);
  CHECK_THROWS_AS(tile_images({}, 2, 1), std::invalid_argument);
}

TEST_CASE("blend_heatmap colours high weights red, low weights blue, and alpha 0 changes nothing") {
  const Image grey = make_image(40, 40, {128, 128, 128});
  // A 2x2 grid whose bottom-right cell holds all the attention.
  const std::vector<float> weights = {0.0f, 0.0f, 0.0f, 1.0f};
  Image unchanged = grey;
  blend_heatmap(unchanged, weights, 2, 2, 0.0f);
  CHECK(unchanged.pixels == grey.pixels);
  Image painted = grey;
  blend_heatmap(painted, weights, 2, 2, 1.0f);
  const RGB hot = painted.pixel(39, 39), cold = painted.pixel(0, 0);
  CHECK(hot.r > 100);
  CHECK(hot.b == 0);
  CHECK(cold.b > 100);
  CHECK(cold.r == 0);
  const RGB jet_top = colormap_jet(1.0f), jet_bottom = colormap_jet(0.0f);
  CHECK((hot.r == jet_top.r && hot.g == jet_top.g && hot.b == jet_top.b));
  CHECK((cold.r == jet_bottom.r && cold.g == jet_bottom.g && cold.b == jet_bottom.b));
  CHECK_THROWS_AS(blend_heatmap(painted, {1.0f, 2.0f}, 2, 2, 0.5f), std::invalid_argument);
}

TEST_CASE("resize_nearest copies source pixels") {
  const Image source = random_image(3, 2, 11);
  const Image big = resize_nearest(source, 9, 8);
  for (int y = 0; y < 9; ++y) {
    for (int x = 0; x < 8; ++x) {
      const RGB expected = source.pixel(y / 3, x / 4), got = big.pixel(y, x);
      REQUIRE((expected.r == got.r && expected.g == got.g && expected.b == got.b));
    }
  }
}

TEST_CASE("plot_lines draws series, axes and a legend") {
  const std::vector<std::vector<float>> series = {{2.5f, 1.8f, 1.2f, 0.9f, 0.8f}, {2.7f, 2.1f, 1.7f, 1.6f, 1.65f}};
  const Image chart = plot_lines(series, {"train", "val"}, 480, 320, "loss per epoch");
  CHECK(chart.width == 480);
  CHECK(chart.height == 320);
  // Both series colours (tab10 blue and orange) appear, and black axes/text.
  int blue = 0, orange = 0, black = 0;
  for (int y = 0; y < chart.height; ++y) {
    for (int x = 0; x < chart.width; ++x) {
      const RGB p = chart.pixel(y, x);
      blue += p.r == 31 && p.g == 119 && p.b == 180;
      orange += p.r == 255 && p.g == 127 && p.b == 14;
      black += p.r == 0 && p.g == 0 && p.b == 0;
    }
  }
  CHECK(blue > 200);
  CHECK(orange > 200);
  CHECK(black > 500);
  // Degenerate inputs still render.
  CHECK(count_pixels_not(plot_lines({{1.0f}}, {"one"}, 200, 120, ""), {255, 255, 255}) > 0);
  CHECK(count_pixels_not(plot_lines({{NAN, 3.0f, NAN}}, {}, 200, 120, "t"), {255, 255, 255}) > 0);
  CHECK_THROWS_AS(plot_lines(series, {}, 50, 50, "tiny"), std::invalid_argument);
}
