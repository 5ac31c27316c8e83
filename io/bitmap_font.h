// A small built-in bitmap font (printable ASCII, 5x8 cells) so that pictures can be labelled without a
// font library or font files.
#pragma once

#include <array>
#include <cstdint>

namespace glimpse::font {

// Each glyph is 5 pixels wide and 8 tall: capitals and digits use rows 0-6, lowercase letters have
// their x-height on rows 2-6, and row 7 holds descenders (g, j, p, q, y, comma).
inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 8;
inline constexpr int kAdvance = kGlyphWidth + 1;      // one blank column between letters
inline constexpr int kLineHeight = kGlyphHeight + 2;  // two blank rows between lines

// One byte per row; bit 4 is the leftmost column. Characters outside printable ASCII (32..126) get a
// hollow box so that unsupported text is visible rather than silently dropped.
using GlyphRows = std::array<uint8_t, kGlyphHeight>;
const GlyphRows& glyph(char c);

inline bool glyph_pixel(char c, int row, int column) {
  return ((glyph(c)[row] >> (kGlyphWidth - 1 - column)) & 1) != 0;
}

}  // namespace glimpse::font
