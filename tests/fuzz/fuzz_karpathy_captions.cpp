// Fuzz target: Karpathy split files (io/captions.h read_karpathy_split) for every split, then the
// dataset's invariants and its per-epoch order (caption_checks.h).
#include "tests/fuzz/caption_checks.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("karpathy", ".json");
  const std::string& path = file.write(data, size);
  CaptionReadOptions options;
  options.check_images = false;  // see fuzz_coco_captions.cpp
  options.max_problem_messages = 5;
  struct Split {
    const char* name;
    bool with_restval;
  };
  for (Split split : {Split{"train", true}, Split{"val", false}, Split{"test", false}, Split{"restval", false}}) {
    options.train_includes_restval = split.with_restval;
    CaptionDataset dataset;
    // A file that is not valid JSON fails the same way for every split.
    if (!fuzz::accepts([&] { dataset = read_karpathy_split(path, "root", split.name, options); })) return 0;
    fuzz::check_caption_dataset(dataset, options);
  }
  return 0;
}
