// Drawing on RGB images for the project's pictures: rectangles, lines, text in the built-in bitmap
// font, attention heat maps blended over a photo, and grids of images.
#pragma once

#include <string>
#include <vector>

#include "io/image.h"

namespace glimpse {

// All drawing clips to the image, so shapes may extend past its edges.
void fill_rect(Image& image, int x, int y, int width, int height, RGB colour);
void draw_rect_outline(Image& image, int x, int y, int width, int height, RGB colour, int thickness = 1);
// A straight line between two pixel centres; thickness grows the line into a square brush.
void draw_line(Image& image, int x0, int y0, int x1, int y1, RGB colour, int thickness = 1);

// Text with its top-left corner at (x, y), every font pixel drawn as a scale x scale block; '\n'
// starts a new line. Only the ink is drawn, the background shows through.
void draw_text(Image& image, int x, int y, const std::string& text, int scale, RGB colour);
// Size in pixels of what draw_text would cover (width of the longest line, height of all lines).
int text_width(const std::string& text, int scale);
int text_height(const std::string& text, int scale);

// Nearest-neighbour resize (for enlarging small pictures without blurring them).
Image resize_nearest(const Image& image, int out_height, int out_width);

// The "jet" colour map: 0 -> dark blue, 0.5 -> green/yellow, 1 -> dark red. t is clamped to [0, 1].
RGB colormap_jet(float t);

// Overlays attention weights given on a grid_height x grid_width grid (row-major): the weights are
// min-max normalised, upsampled bilinearly to the image size (same resampling as resize_bilinear),
// coloured with colormap_jet and blended as (1 - alpha) * image + alpha * colour.
void blend_heatmap(Image& image, const std::vector<float>& weights, int grid_height, int grid_width, float alpha);

// Lays images out row by row in a grid of `columns` columns (fewer if there are fewer images). Every
// cell is as large as the largest image, images sit at the top-left of their cell, and `pad` pixels
// of background surround every cell: the result is used_columns * cell_width + (used_columns + 1) * pad
// wide and rows * cell_height + (rows + 1) * pad tall.
Image tile_images(const std::vector<Image>& images, int columns, int pad, RGB background = {255, 255, 255});

}  // namespace glimpse
