// Attention maps: for each generated word, the decoder's attention over the h x w feature grid,
// upsampled onto the image as a heat map, tiled into one picture with the word under each tile.
#pragma once
#include <string>
#include <vector>

#include "io/image.h"

namespace glimpse::models {

Image render_attention_map(const Image& image, const std::vector<std::string>& words,
                           const std::vector<std::vector<float>>& attention, int grid_size,
                           int tile_size = 192);

}  // namespace glimpse::models
