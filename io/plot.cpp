// Line-chart rendering: axis ranges rounded to "nice" 1-2-5 steps, ticks with numbers, polylines and a
// legend, all drawn with the primitives of io/draw.
#include "io/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "io/bitmap_font.h"
#include "io/draw.h"

namespace glimpse {
namespace {

// Colours that stay distinguishable on white (the usual "tab10" palette).
constexpr RGB kSeriesColours[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                                  {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127}};
constexpr RGB kBlack{0, 0, 0};
constexpr RGB kWhite{255, 255, 255};
constexpr RGB kGridGrey{225, 225, 225};
constexpr RGB kLegendBorder{160, 160, 160};
constexpr int kTickLength = 4;

// The smallest step of the form {1, 2, 5} x 10^k that splits `range` into at most about `target` parts.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double residual = raw / magnitude;
  const double nice = residual <= 1.0 ? 1.0 : residual <= 2.0 ? 2.0 : residual <= 5.0 ? 5.0 : 10.0;
  return nice * magnitude;
}

struct Axis {
  double low, high, step;
  int decimals;  // enough to tell neighbouring ticks apart
};

Axis make_axis(double low, double high, int target_ticks, bool integer_steps) {
  if (!(high > low)) {
    const double pad = std::max(std::fabs(high) * 0.1, 1e-3);
    low -= pad;
    high += pad;
  }
  double step = nice_step(high - low, target_ticks);
  if (integer_steps) step = std::max(1.0, std::round(step));
  Axis axis;
  axis.step = step;
  axis.low = std::floor(low / step + 1e-9) * step;
  axis.high = std::ceil(high / step - 1e-9) * step;
  axis.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  return axis;
}

std::vector<double> tick_values(const Axis& axis) {
  std::vector<double> ticks;
  for (int i = 0;; ++i) {
    const double value = axis.low + i * axis.step;
    if (value > axis.high + axis.step * 1e-6) break;
    ticks.push_back(value);
  }
  return ticks;
}

std::string format_tick(double value, int decimals) {
  if (std::fabs(value) < 1e-12) value = 0.0;  // never print "-0"
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace

Image plot_lines(const std::vector<std::vector<float>>& series, const std::vector<std::string>& labels, int width,
                 int height, const std::string& title) {
  if (width < 120 || height < 90) {
    throw std::invalid_argument("plot_lines: " + std::to_string(width) + "x" + std::to_string(height) +
                                " is too small for a chart (need at least 120x90)");
  }
  double y_low = std::numeric_limits<double>::infinity(), y_high = -y_low;
  size_t longest = 0;
  for (const auto& values : series) {
    longest = std::max(longest, values.size());
    for (float v : values) {
      if (!std::isfinite(v)) continue;
      y_low = std::min(y_low, static_cast<double>(v));
      y_high = std::max(y_high, static_cast<double>(v));
    }
  }
  if (!std::isfinite(y_low)) y_low = 0.0, y_high = 1.0;
  const Axis y_axis = make_axis(y_low, y_high, 5, false);
  const Axis x_axis = make_axis(1.0, std::max<double>(2.0, static_cast<double>(longest)), 8, true);
  const std::vector<double> y_ticks = tick_values(y_axis), x_ticks = tick_values(x_axis);

  int widest_y_label = 0;
  for (double value : y_ticks)
    widest_y_label = std::max(widest_y_label, text_width(format_tick(value, y_axis.decimals), 1));
  const int title_scale = text_width(title, 2) <= width - 20 ? 2 : 1;
  const int left = widest_y_label + kTickLength + 6;
  const int right = width - 12;
  const int top = title.empty() ? 10 : text_height(title, title_scale) + 14;
  const int bottom = height - (font::kGlyphHeight + kTickLength + 8);
  if (right - left < 20 || bottom - top < 20) {
    throw std::invalid_argument("plot_lines: " + std::to_string(width) + "x" + std::to_string(height) +
                                " leaves no room for the plot area");
  }

  const auto to_pixel_x = [&](double x) {
    return left + static_cast<int>(std::lround((x - x_axis.low) / (x_axis.high - x_axis.low) * (right - left)));
  };
  const auto to_pixel_y = [&](double y) {
    return bottom - static_cast<int>(std::lround((y - y_axis.low) / (y_axis.high - y_axis.low) * (bottom - top)));
  };

  Image chart = make_image(height, width, kWhite);
  draw_text(chart, (width - text_width(title, title_scale)) / 2, 6, title, title_scale, kBlack);

  for (double value : y_ticks) {
    const int y = to_pixel_y(value);
    draw_line(chart, left, y, right, y, kGridGrey);
    draw_line(chart, left - kTickLength, y, left, y, kBlack);
    const std::string label = format_tick(value, y_axis.decimals);
    draw_text(chart, left - kTickLength - 2 - text_width(label, 1), y - font::kGlyphHeight / 2, label, 1, kBlack);
  }
  for (double value : x_ticks) {
    const int x = to_pixel_x(value);
    draw_line(chart, x, top, x, bottom, kGridGrey);
    draw_line(chart, x, bottom, x, bottom + kTickLength, kBlack);
    const std::string label = format_tick(value, 0);
    draw_text(chart, x - text_width(label, 1) / 2, bottom + kTickLength + 3, label, 1, kBlack);
  }
  draw_line(chart, left, top, left, bottom, kBlack);
  draw_line(chart, left, bottom, right, bottom, kBlack);

  for (size_t s = 0; s < series.size(); ++s) {
    const RGB colour = kSeriesColours[s % std::size(kSeriesColours)];
    const std::vector<float>& values = series[s];
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) continue;
      const int x = to_pixel_x(static_cast<double>(i + 1)), y = to_pixel_y(values[i]);
      const bool next_finite = i + 1 < values.size() && std::isfinite(values[i + 1]);
      const bool previous_finite = i > 0 && std::isfinite(values[i - 1]);
      if (next_finite) {
        draw_line(chart, x, y, to_pixel_x(static_cast<double>(i + 2)), to_pixel_y(values[i + 1]), colour, 2);
      } else if (!previous_finite) {
        fill_rect(chart, x - 2, y - 2, 5, 5, colour);  // an isolated point would otherwise be invisible
      }
    }
  }

  // Legend in the top-right corner of the plot area.
  std::vector<size_t> entries;
  int widest_label = 0;
  for (size_t s = 0; s < std::min(series.size(), labels.size()); ++s) {
    if (labels[s].empty()) continue;
    entries.push_back(s);
    widest_label = std::max(widest_label, text_width(labels[s], 1));
  }
  if (!entries.empty()) {
    constexpr int kSwatch = 16, kInner = 5;
    const int box_width = kInner + kSwatch + 5 + widest_label + kInner;
    const int box_height = static_cast<int>(entries.size()) * font::kLineHeight + 2 * kInner - 2;
    const int box_left = right - box_width - 4, box_top = top + 4;
    fill_rect(chart, box_left, box_top, box_width, box_height, kWhite);
    draw_rect_outline(chart, box_left, box_top, box_width, box_height, kLegendBorder);
    for (size_t e = 0; e < entries.size(); ++e) {
      const size_t s = entries[e];
      const int row_top = box_top + kInner + static_cast<int>(e) * font::kLineHeight;
      const int swatch_y = row_top + font::kGlyphHeight / 2 - 1;
      fill_rect(chart, box_left + kInner, swatch_y, kSwatch, 2, kSeriesColours[s % std::size(kSeriesColours)]);
      draw_text(chart, box_left + kInner + kSwatch + 5, row_top, labels[s], 1, kBlack);
    }
  }
  return chart;
}

}  // namespace glimpse
