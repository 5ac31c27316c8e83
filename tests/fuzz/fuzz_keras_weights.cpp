// Fuzz target: Keras weight files (io/keras_weights.h read_keras_weights, both the Keras 2 legacy
// layout and Keras 3 .weights.h5) imported into the "tiny" Inception-ResNet encoder
// (models/keras_import.h). The tiny encoder is used because the whole file is read either way and
// its seeds (tests/data/inception/tiny_*.h5) match it completely, so the matching and copying
// that follow a successful read are reached too, while building it costs milliseconds, not the
// full encoder's seconds.
#include "models/keras_import.h"
#include "tests/fuzz/fuzz_support.h"

using namespace glimpse;

namespace {
models::InceptionResNetV2& tiny_encoder() {
  // Built once: an import replaces every tensor it touches and touches none when it fails, so
  // reusing the encoder across inputs does not make one run depend on another.
  static Generator gen(1);
  static models::InceptionResNetV2 encoder(models::InceptionConfig::tiny(), gen);
  return encoder;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file("keras_weights", ".h5");
  const std::string& path = file.write(data, size);
  models::InceptionResNetV2& encoder = tiny_encoder();
  models::KerasImportReport report;
  if (!fuzz::accepts([&] { report = models::import_keras_encoder_weights(encoder, path); })) return 0;
  // A successful import filled every tensor of every layer of the encoder.
  GLIMPSE_FUZZ_CHECK(report.layers > 0 && report.tensors >= report.layers);
  GLIMPSE_FUZZ_CHECK(report.matched_by == "name" || report.matched_by == "slim-name" ||
                     report.matched_by == "structure");
  return 0;
}
