// Fuzz target: loading a captioner for inference (models/training.h load_captioner): the
// checkpoint's metadata, the model config it holds (CaptionerConfig::from_json must refuse
// configs that ask for absurd models), the model's tensors, BatchNorm folding and the tokenizer.
#include "models/training.h"
#include "tests/fuzz/fuzz_support.h"

using namespace glimpse;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("captioner", ".h5");
  const std::string& path = file.write(data, size);
  models::LoadedModel loaded;
  if (!fuzz::accepts([&] { loaded = models::load_captioner(path, Device::CPU); })) return 0;
  // A loaded model is ready to caption: a model, and a tokenizer whose vocabulary starts with the
  // two special tokens (the Tokenizer constructor checks that; a loader that skipped it would not).
  GLIMPSE_FUZZ_CHECK(loaded.model != nullptr && loaded.tokenizer != nullptr);
  GLIMPSE_FUZZ_CHECK(loaded.tokenizer->vocabulary_size() >= 2);
  GLIMPSE_FUZZ_CHECK(loaded.tokenizer->token_of(Tokenizer::kUnknownId) == Tokenizer::kUnknownToken);
  GLIMPSE_FUZZ_CHECK(loaded.tokenizer->sequence_length() >= 1);
  return 0;
}
