// Fuzz target: the caption tokenizer (io/tokenizer.h): learning a vocabulary from captions
// (adapt), encoding, decoding, rebuilding a tokenizer from a stored vocabulary (what a checkpoint
// holds), and decoding arbitrary ids.
//
// Input layout: byte 0 picks max_tokens (0 = no limit, else the byte's value, so 1 — which adapt
// must refuse — is reachable), byte 1 the sequence length (1..32), the rest is captions, one per
// line.
#include <cstring>
#include <memory>
#include <set>

#include "io/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

using namespace glimpse;

namespace {
std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t max_tokens = data[0];
  const int sequence_length = 1 + data[1] % 32;
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::vector<std::string> lines = split_lines(text);

  Tokenizer tokenizer(sequence_length);
  std::vector<std::string> texts;
  for (const std::string& line : lines) texts.push_back(with_markers(line));
  const bool adapted = fuzz::accepts([&] { tokenizer.adapt(texts, max_tokens); });
  GLIMPSE_FUZZ_CHECK(adapted == (max_tokens != 1));  // only max_tokens == 1 is invalid

  const std::vector<std::string>& vocabulary = tokenizer.vocabulary();
  GLIMPSE_FUZZ_CHECK(vocabulary.size() >= 2 && vocabulary[0].empty() && vocabulary[1] == Tokenizer::kUnknownToken);
  if (max_tokens >= 2) GLIMPSE_FUZZ_CHECK(vocabulary.size() <= max_tokens);
  GLIMPSE_FUZZ_CHECK(std::set<std::string>(vocabulary.begin(), vocabulary.end()).size() == vocabulary.size());
  for (size_t id = 0; id < vocabulary.size(); ++id)
    GLIMPSE_FUZZ_CHECK(tokenizer.id_of(vocabulary[id]) == static_cast<int32_t>(id) || id == 0);

  // A learned vocabulary is what a checkpoint stores; it must be accepted back as it is.
  Tokenizer restored(vocabulary, sequence_length);
  for (const std::string& line : lines) {
    const std::vector<int32_t> ids = tokenizer.encode(with_markers(line));
    GLIMPSE_FUZZ_CHECK(ids.size() == static_cast<size_t>(sequence_length));
    GLIMPSE_FUZZ_CHECK(restored.encode(with_markers(line)) == ids);
    bool known = true;
    for (int32_t id : ids) {
      GLIMPSE_FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < vocabulary.size());
      known = known && id != Tokenizer::kUnknownId;
    }
    // Tokens are standardized and whitespace-free, so decoding then encoding again gives the same
    // ids — except for [UNK], whose brackets standardization deletes.
    const std::string decoded = tokenizer.decode(ids);
    if (known) GLIMPSE_FUZZ_CHECK(tokenizer.encode(decoded) == ids);
    (void)tokenizer.decode(ids, /*drop_markers=*/true);
  }

  // The lines as a stored vocabulary: refused (std::invalid_argument) when one is empty or
  // repeated, else every token maps back to its position.
  std::vector<std::string> stored = {"", std::string(Tokenizer::kUnknownToken)};
  stored.insert(stored.end(), lines.begin(), lines.end());
  std::unique_ptr<Tokenizer> from_stored;
  if (fuzz::accepts([&] { from_stored = std::make_unique<Tokenizer>(stored, sequence_length); }))
    for (size_t id = 0; id < stored.size(); ++id)
      GLIMPSE_FUZZ_CHECK(from_stored->id_of(stored[id]) == static_cast<int32_t>(id) || id == 0);

  // Arbitrary ids from the raw bytes: decode either succeeds or throws std::out_of_range.
  std::vector<int32_t> raw((size - 2) / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data + 2, raw.size() * 4);
  fuzz::accepts([&] { (void)tokenizer.decode(raw, data[0] % 2 == 0); });
  return 0;
}
