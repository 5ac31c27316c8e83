// Keras-TextVectorization-equivalent caption tokenizer: standardize, split, adapt, encode, decode.
#include "io/tokenizer.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <unordered_set>
#include <utility>

namespace glimpse {
namespace {

// The notebook's regex class [!\"#$%&\(\)\*\+.,-/:;=?@\[\\\]^_`{|}~] written out; its ",-/" is a
// range, i.e. ",", "-", ".", "/".
constexpr std::string_view kDeletedCharacters = "!\"#$%&()*+.,-/:;=?@[\\]^_`{|}~";

constexpr std::array<bool, 256> make_deleted_table() {
    std::array<bool, 256> table{};
    for (char c : kDeletedCharacters) table[static_cast<unsigned char>(c)] = true;
    return table;
}
constexpr std::array<bool, 256> kIsDeleted = make_deleted_table();

bool is_ascii_whitespace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

void check_sequence_length(int sequence_length, const char* where) {
    if (sequence_length < 1)
        throw std::invalid_argument(std::string(where) + ": sequence_length must be >= 1, got " +
                                    std::to_string(sequence_length));
}

}  // namespace

std::string standardize_caption(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (kIsDeleted[static_cast<unsigned char>(c)]) continue;
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        out.push_back(c);
    }
    return out;
}

std::vector<std::string> split_on_whitespace(std::string_view text) {
    std::vector<std::string> tokens;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_ascii_whitespace(text[i])) ++i;
        size_t start = i;
        while (i < text.size() && !is_ascii_whitespace(text[i])) ++i;
        if (i > start) tokens.emplace_back(text.substr(start, i - start));
    }
    return tokens;
}

std::string with_markers(std::string_view caption) {
    std::string out;
    out.reserve(caption.size() + kStartMarker.size() + kEndMarker.size() + 2);
    out.append(kStartMarker).append(" ").append(caption).append(" ").append(kEndMarker);
    return out;
}

Tokenizer::Tokenizer(int sequence_length) : sequence_length_(sequence_length) {
    check_sequence_length(sequence_length, "Tokenizer");
    vocabulary_ = {"", std::string(kUnknownToken)};
    rebuild_index();
}

Tokenizer::Tokenizer(std::vector<std::string> vocabulary, int sequence_length)
    : vocabulary_(std::move(vocabulary)), sequence_length_(sequence_length) {
    check_sequence_length(sequence_length, "Tokenizer");
    if (vocabulary_.size() < 2 || !vocabulary_[0].empty() || vocabulary_[1] != kUnknownToken)
        throw std::invalid_argument(
            "Tokenizer: vocabulary must start with \"\" (padding) and \"[UNK]\"");
    if (vocabulary_.size() > static_cast<size_t>(INT32_MAX))
        throw std::invalid_argument("Tokenizer: vocabulary too large for int32 ids");
    for (size_t i = 2; i < vocabulary_.size(); ++i) {
        if (vocabulary_[i].empty())
            throw std::invalid_argument("Tokenizer: vocabulary entry " + std::to_string(i) +
                                        " is empty (only id 0 may be the empty token)");
    }
    rebuild_index();
    if (id_by_token_.size() != vocabulary_.size()) {
        // Name the first repeated token so a corrupt checkpoint is easy to diagnose.
        std::unordered_set<std::string_view> seen;
        for (const std::string& token : vocabulary_)
            if (!seen.insert(token).second)
                throw std::invalid_argument("Tokenizer: vocabulary repeats token \"" + token + "\"");
    }
}

void Tokenizer::rebuild_index() {
    id_by_token_.clear();
    id_by_token_.reserve(vocabulary_.size());
    for (size_t i = 0; i < vocabulary_.size(); ++i)
        id_by_token_.emplace(vocabulary_[i], static_cast<int32_t>(i));
}

void Tokenizer::adapt(const std::vector<std::string>& texts, size_t max_tokens) {
    if (max_tokens == 1)
        throw std::invalid_argument(
            "Tokenizer::adapt: max_tokens must be 0 (no limit) or >= 2 (it counts \"\" and [UNK])");

    std::unordered_map<std::string, int64_t> counts;
    for (const std::string& text : texts)
        for (std::string& token : tokenize(text)) ++counts[std::move(token)];
    // Keras removes the special tokens from the counts before sorting. "" cannot come out of the
    // split; "[UNK]" could only appear with a different standardize, but stay faithful anyway.
    counts.erase(std::string(kUnknownToken));

    std::vector<std::pair<std::string, int64_t>> ranked(counts.begin(), counts.end());
    // std::string compares bytes as unsigned char, the same order as numpy's bytes sort.
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
        if (a.second != b.second) return a.second > b.second;
        return a.first > b.first;
    });

    size_t learned = ranked.size();
    if (max_tokens != 0) learned = std::min(learned, max_tokens - 2);
    std::vector<std::string> vocabulary;
    vocabulary.reserve(learned + 2);
    vocabulary.emplace_back("");
    vocabulary.emplace_back(kUnknownToken);
    for (size_t i = 0; i < learned; ++i) vocabulary.push_back(std::move(ranked[i].first));
    vocabulary_ = std::move(vocabulary);
    rebuild_index();
}

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
    return split_on_whitespace(standardize_caption(text));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids(static_cast<size_t>(sequence_length_), kPaddingId);
    std::vector<std::string> tokens = tokenize(text);
    size_t kept = std::min(tokens.size(), ids.size());
    for (size_t i = 0; i < kept; ++i) ids[i] = id_of(tokens[i]);
    return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool drop_markers) const {
    std::string text;
    for (int32_t id : ids) {
        if (id == kPaddingId) break;
        const std::string& token = token_of(id);
        if (drop_markers) {
            if (token == kStartMarker) continue;
            if (token == kEndMarker) break;
        }
        if (!text.empty()) text.push_back(' ');
        text += token;
    }
    return text;
}

int32_t Tokenizer::id_of(std::string_view token) const {
    auto found = id_by_token_.find(token);
    return found == id_by_token_.end() ? kUnknownId : found->second;
}

const std::string& Tokenizer::token_of(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= vocabulary_.size())
        throw std::out_of_range("Tokenizer::token_of: id " + std::to_string(id) +
                                " outside the vocabulary [0, " +
                                std::to_string(vocabulary_.size()) + ")");
    return vocabulary_[static_cast<size_t>(id)];
}

}  // namespace glimpse
