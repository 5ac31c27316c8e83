// Rectangles, lines, bitmap text, heat-map overlays and image grids on RGB images.
#include "io/draw.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "io/bitmap_font.h"

namespace glimpse {

void fill_rect(Image& image, int x, int y, int width, int height, RGB colour) {
  const int x_begin = std::max(x, 0), x_end = std::min(x + width, image.width);
  const int y_begin = std::max(y, 0), y_end = std::min(y + height, image.height);
  for (int row = y_begin; row < y_end; ++row) {
    for (int column = x_begin; column < x_end; ++column) image.set_pixel(row, column, colour);
  }
}

void draw_rect_outline(Image& image, int x, int y, int width, int height, RGB colour, int thickness) {
  fill_rect(image, x, y, width, thickness, colour);
  fill_rect(image, x, y + height - thickness, width, thickness, colour);
  fill_rect(image, x, y, thickness, height, colour);
  fill_rect(image, x + width - thickness, y, thickness, height, colour);
}

void draw_line(Image& image, int x0, int y0, int x1, int y1, RGB colour, int thickness) {
  // Bresenham's algorithm: step along the longer axis, carrying the error along the shorter one.
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int step_x = x0 < x1 ? 1 : -1, step_y = y0 < y1 ? 1 : -1;
  const int brush_offset = (thickness - 1) / 2;
  int error = dx + dy;
  while (true) {
    fill_rect(image, x0 - brush_offset, y0 - brush_offset, thickness, thickness, colour);
    if (x0 == x1 && y0 == y1) break;
    const int doubled = 2 * error;
    if (doubled >= dy) {
      error += dy;
      x0 += step_x;
    }
    if (doubled <= dx) {
      error += dx;
      y0 += step_y;
    }
  }
}

void draw_text(Image& image, int x, int y, const std::string& text, int scale, RGB colour) {
  if (scale < 1) throw std::invalid_argument("draw_text: scale must be >= 1, got " + std::to_string(scale));
  int pen_x = x, pen_y = y;
  for (char c : text) {
    if (c == '\n') {
      pen_x = x;
      pen_y += font::kLineHeight * scale;
      continue;
    }
    for (int row = 0; row < font::kGlyphHeight; ++row) {
      for (int column = 0; column < font::kGlyphWidth; ++column) {
        if (font::glyph_pixel(c, row, column)) {
          fill_rect(image, pen_x + column * scale, pen_y + row * scale, scale, scale, colour);
        }
      }
    }
    pen_x += font::kAdvance * scale;
  }
}

int text_width(const std::string& text, int scale) {
  size_t longest = 0, current = 0;
  for (char c : text) {
    current = c == '\n' ? 0 : current + 1;
    longest = std::max(longest, current);
  }
  // The blank column after the last letter is not part of the text.
  return longest == 0 ? 0 : (static_cast<int>(longest) * font::kAdvance - 1) * scale;
}

int text_height(const std::string& text, int scale) {
  if (text.empty()) return 0;
  const int lines = 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  return ((lines - 1) * font::kLineHeight + font::kGlyphHeight) * scale;
}

Image resize_nearest(const Image& image, int out_height, int out_width) {
  if (out_height <= 0 || out_width <= 0 || image.empty()) {
    throw std::invalid_argument("resize_nearest: cannot resize " + std::to_string(image.height) + "x" +
                                std::to_string(image.width) + " to " + std::to_string(out_height) + "x" +
                                std::to_string(out_width));
  }
  Image out = make_image(out_height, out_width);
  for (int y = 0; y < out_height; ++y) {
    // The source pixel whose area contains the centre of the output pixel.
    const int source_y = static_cast<int>((2LL * y + 1) * image.height / (2LL * out_height));
    for (int x = 0; x < out_width; ++x) {
      const int source_x = static_cast<int>((2LL * x + 1) * image.width / (2LL * out_width));
      out.set_pixel(y, x, image.pixel(source_y, source_x));
    }
  }
  return out;
}

RGB colormap_jet(float t) {
  t = std::clamp(t, 0.0f, 1.0f);
  // Three overlapping tent functions centred at 1/4 (blue), 2/4 (green) and 3/4 (red).
  const auto channel = [t](float centre) {
    const float value = std::clamp(1.5f - std::fabs(4.0f * t - centre), 0.0f, 1.0f);
    return static_cast<uint8_t>(std::lround(255.0f * value));
  };
  return {channel(3.0f), channel(2.0f), channel(1.0f)};
}

void blend_heatmap(Image& image, const std::vector<float>& weights, int grid_height, int grid_width, float alpha) {
  if (image.empty()) throw std::invalid_argument("blend_heatmap: empty image");
  if (!(alpha >= 0.0f && alpha <= 1.0f)) throw std::invalid_argument("blend_heatmap: alpha must be in [0, 1]");
  if (grid_height <= 0 || grid_width <= 0 || weights.size() != static_cast<size_t>(grid_height) * grid_width) {
    throw std::invalid_argument("blend_heatmap: " + std::to_string(weights.size()) + " weights do not fill a " +
                                std::to_string(grid_height) + "x" + std::to_string(grid_width) + " grid");
  }
  const auto [lowest, highest] = std::minmax_element(weights.begin(), weights.end());
  const float range = *highest - *lowest;
  std::vector<float> normalised(weights.size(), 0.0f);
  if (range > 0.0f && std::isfinite(range)) {
    for (size_t i = 0; i < weights.size(); ++i) normalised[i] = (weights[i] - *lowest) / range;
  }
  const std::vector<float> upsampled =
      resize_bilinear_map(normalised, grid_height, grid_width, image.height, image.width);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const RGB heat = colormap_jet(upsampled[static_cast<size_t>(y) * image.width + x]);
      const uint8_t heat_channels[3] = {heat.r, heat.g, heat.b};
      uint8_t* pixel = image.at(y, x);
      for (int c = 0; c < 3; ++c) {
        const float mixed = (1.0f - alpha) * pixel[c] + alpha * heat_channels[c];
        pixel[c] = static_cast<uint8_t>(std::clamp(std::lround(mixed), 0L, 255L));
      }
    }
  }
}

Image tile_images(const std::vector<Image>& images, int columns, int pad, RGB background) {
  if (images.empty()) throw std::invalid_argument("tile_images: no images");
  if (columns <= 0 || pad < 0) {
    throw std::invalid_argument("tile_images: need columns > 0 and pad >= 0, got columns=" + std::to_string(columns) +
                                " pad=" + std::to_string(pad));
  }
  int cell_height = 0, cell_width = 0;
  for (const Image& image : images) {
    if (image.channels != 3) throw std::invalid_argument("tile_images: every image must be RGB");
    cell_height = std::max(cell_height, image.height);
    cell_width = std::max(cell_width, image.width);
  }
  const int count = static_cast<int>(images.size());
  const int used_columns = std::min(columns, count);
  const int rows = (count + columns - 1) / columns;
  Image grid = make_image(rows * cell_height + (rows + 1) * pad, used_columns * cell_width + (used_columns + 1) * pad,
                          background);
  for (int i = 0; i < count; ++i) {
    const int top = pad + (i / columns) * (cell_height + pad);
    const int left = pad + (i % columns) * (cell_width + pad);
    const Image& image = images[i];
    for (int y = 0; y < image.height; ++y) {
      std::copy(image.at(y, 0), image.at(y, 0) + static_cast<size_t>(image.width) * 3, grid.at(top + y, left));
    }
  }
  return grid;
}

}  // namespace glimpse
