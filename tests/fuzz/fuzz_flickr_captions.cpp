// Fuzz target: Flickr8k/30k token files (io/captions.h read_flickr_captions), with and without a
// split list, then the dataset's invariants and its per-epoch order (caption_checks.h).
//
// Input layout: the token file, optionally followed by a NUL byte and the split list (one image
// file name per line). Without a NUL the whole input is the token file.
#include <cstring>

#include "tests/fuzz/caption_checks.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile tokens("flickr_tokens", ".txt");
  static fuzz::InputFile list("flickr_list", ".txt");
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t token_size = nul != nullptr ? static_cast<size_t>(nul - data) : size;
  const std::string& token_path = tokens.write(data, token_size);
  std::string list_path;
  if (nul != nullptr) list_path = list.write(nul + 1, size - token_size - 1);

  CaptionReadOptions options;
  options.check_images = false;  // see fuzz_coco_captions.cpp
  options.max_problem_messages = 5;
  CaptionDataset dataset;
  if (!fuzz::accepts([&] { dataset = read_flickr_captions(token_path, "images", list_path, options); })) return 0;
  fuzz::check_caption_dataset(dataset, options);
  return 0;
}
