// What every caption reader promises about the CaptionDataset it returns (io/captions.h), checked
// by the three caption fuzz targets, and the per-epoch order built from it.
#pragma once

#include "io/captions.h"
#include "tests/fuzz/fuzz_support.h"

namespace glimpse::fuzz {

inline bool is_caption_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

inline void check_caption_dataset(const CaptionDataset& data, const CaptionReadOptions& options) {
  for (const CaptionedImage& image : data.images) {
    // Images without a usable caption are skipped, and captions are trimmed and never empty.
    GLIMPSE_FUZZ_CHECK(!image.captions.empty());
    for (const std::string& caption : image.captions) {
      GLIMPSE_FUZZ_CHECK(!caption.empty());
      GLIMPSE_FUZZ_CHECK(!is_caption_space(caption.front()) && !is_caption_space(caption.back()));
    }
  }
  GLIMPSE_FUZZ_CHECK(data.problems.size() <= options.max_problem_messages);
  GLIMPSE_FUZZ_CHECK(data.problems.size() <= data.problem_count());
  (void)summarize_problems(data);

  // One pair per image (a caption drawn per epoch), or every (image, caption) pair; every index
  // in range. Training indexes the dataset with these without further checks.
  for (bool all_pairs : {false, true}) {
    auto pairs = epoch_pairs(data, 7, 1, all_pairs);
    GLIMPSE_FUZZ_CHECK(pairs.size() == (all_pairs ? data.caption_count() : data.images.size()));
    for (auto [image, caption] : pairs) {
      GLIMPSE_FUZZ_CHECK(image < data.images.size());
      GLIMPSE_FUZZ_CHECK(caption < data.images[image].captions.size());
    }
  }
}

}  // namespace glimpse::fuzz
