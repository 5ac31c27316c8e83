// Word tokenizer for captions: the equivalent of the Keras TextVectorization layer exactly as the
// captioning notebook configures it (its custom standardize, whitespace split, a vocabulary learned
// by adapt, fixed-length integer output).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace glimpse {

// The notebook's standardize: lowercase ASCII letters (like tf.strings.lower, which leaves every
// non-ASCII byte alone), then delete each of  !"#$%&()*+.,-/:;=?@[\]^_`{|}~ . It keeps '<', '>' (so
// "<start>" survives) and the apostrophe, and deletes '-' without a space ("on-the-go" -> "onthego").
std::string standardize_caption(std::string_view text);

// Splits on runs of ASCII whitespace (space, \t, \n, \v, \f, \r), as tf.strings.split does.
std::vector<std::string> split_on_whitespace(std::string_view text);

// "<start> " + caption + " <end>": the form in which the notebook feeds every caption.
std::string with_markers(std::string_view caption);

inline constexpr std::string_view kStartMarker = "<start>";
inline constexpr std::string_view kEndMarker = "<end>";

class Tokenizer {
public:
    static constexpr int32_t kPaddingId = 0;   // token ""
    static constexpr int32_t kUnknownId = 1;   // token "[UNK]"
    static constexpr std::string_view kUnknownToken = "[UNK]";
    static constexpr int kDefaultSequenceLength = 64;

    // Vocabulary holds only the two special tokens until adapt() is called. (The default
    // constructor is not explicit so that structs holding a Tokenizer can be brace-initialised.)
    Tokenizer() : Tokenizer(kDefaultSequenceLength) {}
    explicit Tokenizer(int sequence_length);

    // Rebuilds a tokenizer from a stored vocabulary (as vocabulary() returned it, the Keras
    // get_vocabulary() layout): [0] must be "", [1] "[UNK]", the rest distinct and non-empty.
    explicit Tokenizer(std::vector<std::string> vocabulary,
                       int sequence_length = kDefaultSequenceLength);

    // Learns the vocabulary from texts, replacing any previous one: ids 0 and 1 are the specials,
    // then tokens by descending count, ties by descending byte order of the token (what Keras
    // does: np.lexsort by (count, token), reversed). max_tokens counts the two specials and must
    // be at least 2; 0 means no limit (Keras max_tokens=None).
    void adapt(const std::vector<std::string>& texts, size_t max_tokens);

    // Standardized, split tokens of one text (before lookup).
    std::vector<std::string> tokenize(std::string_view text) const;

    // Ids of the first sequence_length() tokens, padded with 0; unknown tokens map to 1.
    std::vector<int32_t> encode(std::string_view text) const;

    // Tokens joined by single spaces, stopping at the first padding id. With drop_markers,
    // "<start>" tokens are skipped and decoding stops at the first "<end>".
    std::string decode(std::span<const int32_t> ids, bool drop_markers = false) const;

    int32_t id_of(std::string_view token) const;         // kUnknownId when absent
    const std::string& token_of(int32_t id) const;       // throws std::out_of_range
    const std::vector<std::string>& vocabulary() const { return vocabulary_; }
    size_t vocabulary_size() const { return vocabulary_.size(); }
    int sequence_length() const { return sequence_length_; }

private:
    // Lets id_of look up a string_view without building a std::string.
    struct TransparentHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    void rebuild_index();

    std::vector<std::string> vocabulary_;
    std::unordered_map<std::string, int32_t, TransparentHash, std::equal_to<>> id_by_token_;
    int sequence_length_;
};

}  // namespace glimpse
