// Attention-map rendering (see attention_map.h).
#include "models/attention_map.h"

#include <algorithm>
#include <stdexcept>

#include "io/draw.h"

namespace glimpse::models {

namespace {
Image to_tile(const Image& image, int size) {
  std::vector<float> resized = resize_bilinear(image, size, size);
  Image tile = make_image(size, size);
  for (size_t i = 0; i < resized.size(); ++i)
    tile.pixels[i] = static_cast<uint8_t>(std::clamp(resized[i] + 0.5f, 0.0f, 255.0f));
  return tile;
}

Image labelled(const Image& tile, const std::string& text) {
  const int scale = 2;
  const int label_h = text_height(text, scale) + 8;
  Image out = make_image(tile.height + label_h, tile.width, {255, 255, 255});
  for (int y = 0; y < tile.height; ++y)
    std::copy(tile.at(y, 0), tile.at(y, 0) + tile.width * 3, out.at(y, 0));
  const int x = std::max(0, (tile.width - text_width(text, scale)) / 2);
  draw_text(out, x, tile.height + 4, text, scale, {0, 0, 0});
  return out;
}
}  // namespace

Image render_attention_map(const Image& image, const std::vector<std::string>& words,
                           const std::vector<std::vector<float>>& attention, int grid_size,
                           int tile_size) {
  if (words.size() != attention.size())
    throw std::invalid_argument("render_attention_map: " + std::to_string(words.size()) +
                                " words but " + std::to_string(attention.size()) + " attention rows");
  const Image base = to_tile(image, tile_size);
  std::vector<Image> tiles{labelled(base, "(input)")};
  for (size_t i = 0; i < words.size(); ++i) {
    if (static_cast<int>(attention[i].size()) != grid_size * grid_size)
      throw std::invalid_argument("render_attention_map: attention row of " +
                                  std::to_string(attention[i].size()) + " values for a " +
                                  std::to_string(grid_size) + "x" + std::to_string(grid_size) + " grid");
    // Stretch each row to [0, 1] so the focus is visible even when the weights are flat.
    std::vector<float> w = attention[i];
    const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
    const float low = *lo, range = std::max(*hi - *lo, 1e-12f);
    for (float& v : w) v = (v - low) / range;
    Image tile = base;
    blend_heatmap(tile, w, grid_size, grid_size, 0.5f);
    tiles.push_back(labelled(tile, words[i]));
  }
  const int columns = std::min<int>(5, static_cast<int>(tiles.size()));
  return tile_images(tiles, columns, 6);
}

}  // namespace glimpse::models
