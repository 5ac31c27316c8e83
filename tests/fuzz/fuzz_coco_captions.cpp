// Fuzz target: COCO caption files (io/captions.h read_coco_captions), then the dataset's
// invariants and its per-epoch order (caption_checks.h).
#include "tests/fuzz/caption_checks.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("coco", ".json");
  const std::string& path = file.write(data, size);
  // Image files are not checked: a fuzzer cannot create them, and without them every record
  // would stop at "missing image file" before the caption handling this target is after.
  CaptionReadOptions options;
  options.check_images = false;
  options.max_problem_messages = 5;  // small, so the cap is actually reached
  CaptionDataset dataset;
  if (!fuzz::accepts([&] { dataset = read_coco_captions(path, "images", options); })) return 0;
  fuzz::check_caption_dataset(dataset, options);
  return 0;
}
