// Fuzz target: the checkpoint reader (io/checkpoint.h): read_checkpoint_meta, then
// load_checkpoint_tensors into a small model state with optimizer moments (small_state.h).
#include "io/checkpoint.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/small_state.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("checkpoint", ".h5");
  const std::string& path = file.write(data, size);

  CheckpointContents meta;
  if (fuzz::accepts([&] { meta = read_checkpoint_meta(path); })) {
    // Both JSON members came out of a successful parse, so serialising them back must work.
    (void)meta.model_config.dump();
    (void)meta.progress.dump();
  }

  // A sentinel that no seed stores, so "unchanged after a refusal" is observable.
  constexpr float kSentinel = -1234.5f;
  fuzz::SmallState state(kSentinel);
  const bool loaded = fuzz::accepts([&] { load_checkpoint_tensors(path, state.model, &state.optimizer); });
  // checkpoint.h promises that nothing is modified unless everything matches.
  if (!loaded) GLIMPSE_FUZZ_CHECK(state.all_equal(kSentinel));
  return 0;
}
