// A minimal line chart (e.g. training and validation loss per epoch) rendered straight to an RGB image.
#pragma once

#include <string>
#include <vector>

#include "io/image.h"

namespace glimpse {

// Draws each series as a coloured polyline, point i at x = i + 1 (epochs count from 1), with axes, grid
// lines, numbered ticks on both axes, a title on top and a legend naming each series (labels may be
// fewer than series; missing ones are left out of the legend). Non-finite values break the line.
// Throws std::invalid_argument when width or height is too small to hold the axes (< 120 x 90).
Image plot_lines(const std::vector<std::vector<float>>& series, const std::vector<std::string>& labels, int width,
                 int height, const std::string& title);

}  // namespace glimpse
