// BLEU, ROUGE-L and CIDEr-D exactly as pycocoevalcap computes them, and a PTB-like tokenizer.
// The order of floating-point operations follows the Python code where it could matter.
#include "models/caption_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace glimpse {
namespace {

constexpr int kMaxN = 4;

// str.split() with no argument, restricted to ASCII: runs of whitespace separate words.
bool is_python_whitespace(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

std::vector<std::string> split_words(const std::string& text) {
    std::vector<std::string> words;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_python_whitespace(text[i])) ++i;
        size_t start = i;
        while (i < text.size() && !is_python_whitespace(text[i])) ++i;
        if (i > start) words.push_back(text.substr(start, i - start));
    }
    return words;
}

// str.split(" "): every single space separates, so "a  b" has an empty middle token and ""
// is one empty token. ROUGE-L's lengths depend on this.
std::vector<std::string> split_on_each_space(const std::string& text) {
    std::vector<std::string> tokens;
    size_t start = 0;
    for (size_t space = text.find(' '); space != std::string::npos; space = text.find(' ', start)) {
        tokens.push_back(text.substr(start, space - start));
        start = space + 1;
    }
    tokens.push_back(text.substr(start));
    return tokens;
}

// counts[n - 1] maps each n-gram (its words joined by single spaces: words hold no whitespace, so
// the key is unambiguous) to its number of occurrences.
using NgramCounts = std::array<std::unordered_map<std::string, int>, kMaxN>;

NgramCounts count_ngrams(const std::vector<std::string>& words) {
    NgramCounts counts;
    for (size_t n = 1; n <= kMaxN; ++n) {
        for (size_t i = 0; i + n <= words.size(); ++i) {
            std::string key = words[i];
            for (size_t j = i + 1; j < i + n; ++j) key.append(" ").append(words[j]);
            ++counts[n - 1][key];
        }
    }
    return counts;
}

void check_corpus(const std::vector<std::string>& candidates,
                  const std::vector<std::vector<std::string>>& references, const char* where) {
    if (candidates.size() != references.size())
        throw std::invalid_argument(std::string(where) + ": " + std::to_string(candidates.size()) +
                                    " candidates but " + std::to_string(references.size()) +
                                    " reference lists");
    if (candidates.empty()) throw std::invalid_argument(std::string(where) + ": empty corpus");
    for (size_t i = 0; i < references.size(); ++i)
        if (references[i].empty())
            throw std::invalid_argument(std::string(where) + ": image " + std::to_string(i) +
                                        " has no reference captions");
}

// ---- BLEU -----------------------------------------------------------------------------------

struct BleuCounts {
    int candidate_length = 0;
    int reference_length = 0;           // the "closest" reference length
    std::array<int, kMaxN> guessed{};   // candidate n-grams
    std::array<int, kMaxN> correct{};   // of which found in a reference, clipped
};

BleuCounts bleu_counts(const std::string& candidate, const std::vector<std::string>& references) {
    BleuCounts result;
    std::array<std::unordered_map<std::string, int>, kMaxN> max_reference_counts;
    std::vector<int> reference_lengths;
    for (const std::string& reference : references) {
        std::vector<std::string> words = split_words(reference);
        reference_lengths.push_back(static_cast<int>(words.size()));
        NgramCounts counts = count_ngrams(words);
        for (int n = 0; n < kMaxN; ++n)
            for (const auto& [ngram, count] : counts[n]) {
                int& best = max_reference_counts[n][ngram];
                best = std::max(best, count);
            }
    }

    std::vector<std::string> words = split_words(candidate);
    result.candidate_length = static_cast<int>(words.size());
    // min over (|ref - cand|, ref): the closest length, ties going to the shorter reference.
    result.reference_length = reference_lengths.front();
    for (int length : reference_lengths) {
        int distance = std::abs(length - result.candidate_length);
        int best_distance = std::abs(result.reference_length - result.candidate_length);
        if (distance < best_distance || (distance == best_distance && length < result.reference_length))
            result.reference_length = length;
    }

    NgramCounts counts = count_ngrams(words);
    for (int n = 0; n < kMaxN; ++n) {
        result.guessed[n] = std::max(0, result.candidate_length - n);
        for (const auto& [ngram, count] : counts[n]) {
            auto found = max_reference_counts[n].find(ngram);
            if (found != max_reference_counts[n].end()) result.correct[n] += std::min(count, found->second);
        }
    }
    return result;
}

// The geometric means of the modified precisions with the brevity penalty, as BleuScorer does it:
// "tiny" keeps a zero match count from producing log(0), "small" keeps 0/0 away.
std::array<double, 4> bleu_from_counts(double candidate_length, double reference_length,
                                       const std::array<double, kMaxN>& guessed,
                                       const std::array<double, kMaxN>& correct) {
    const double small = 1e-9, tiny = 1e-15;
    std::array<double, 4> scores{};
    double product = 1.0;
    for (int n = 0; n < kMaxN; ++n) {
        product *= (correct[n] + tiny) / (guessed[n] + small);
        scores[n] = std::pow(product, 1.0 / (n + 1));
    }
    double ratio = (candidate_length + tiny) / (reference_length + small);
    if (ratio < 1)
        for (double& score : scores) score *= std::exp(1 - 1 / ratio);
    return scores;
}

// ---- ROUGE-L --------------------------------------------------------------------------------

size_t longest_common_subsequence(const std::vector<std::string>& a,
                                  const std::vector<std::string>& b) {
    std::vector<size_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
    for (size_t i = 1; i <= a.size(); ++i) {
        for (size_t j = 1; j <= b.size(); ++j)
            current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1
                                              : std::max(previous[j], current[j - 1]);
        std::swap(previous, current);
    }
    return previous[b.size()];
}

// ---- CIDEr-D --------------------------------------------------------------------------------

struct TfIdfVector {
    std::array<std::unordered_map<std::string, double>, kMaxN> weights;
    std::array<double, kMaxN> norm{};
    // CiderScorer's "length" counts bigrams, not words (n == 1 in its 0-based loop). Kept for
    // fidelity; it only differs from a word-count difference for empty captions, which score 0.
    int bigram_count = 0;
};

using DocumentFrequency = std::array<std::unordered_map<std::string, double>, kMaxN>;

TfIdfVector tf_idf(const NgramCounts& counts, const DocumentFrequency& document_frequency,
                   double log_corpus_size) {
    TfIdfVector vector;
    for (int n = 0; n < kMaxN; ++n) {
        for (const auto& [ngram, term_frequency] : counts[n]) {
            auto found = document_frequency[n].find(ngram);
            double df = found == document_frequency[n].end() ? 0.0 : found->second;
            double weight = term_frequency * (log_corpus_size - std::log(std::max(1.0, df)));
            vector.weights[n][ngram] = weight;
            vector.norm[n] += weight * weight;
            if (n == 1) vector.bigram_count += term_frequency;
        }
        vector.norm[n] = std::sqrt(vector.norm[n]);
    }
    return vector;
}

// Per-n cosine similarity with the candidate's weights clipped at the reference's, times the
// Gaussian length penalty.
std::array<double, kMaxN> clipped_similarity(const TfIdfVector& candidate,
                                             const TfIdfVector& reference, double sigma) {
    double delta = static_cast<double>(candidate.bigram_count - reference.bigram_count);
    double penalty = std::exp(-(delta * delta) / (2 * sigma * sigma));
    std::array<double, kMaxN> similarity{};
    for (int n = 0; n < kMaxN; ++n) {
        for (const auto& [ngram, weight] : candidate.weights[n]) {
            auto found = reference.weights[n].find(ngram);
            if (found == reference.weights[n].end()) continue;
            similarity[n] += std::min(weight, found->second) * found->second;
        }
        if (candidate.norm[n] != 0 && reference.norm[n] != 0)
            similarity[n] /= candidate.norm[n] * reference.norm[n];
        similarity[n] *= penalty;
    }
    return similarity;
}

// ---- PTB-like tokenizer ---------------------------------------------------------------------

bool is_digit(char c) { return c >= '0' && c <= '9'; }

const char* bracket_token(char c) {
    switch (c) {
        case '(': return "-lrb-";
        case ')': return "-rrb-";
        case '[': return "-lsb-";
        case ']': return "-rsb-";
        case '{': return "-lcb-";
        case '}': return "-rcb-";
        default: return nullptr;
    }
}

bool is_bracket_token(std::string_view token) {
    for (std::string_view bracket : {"-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-"})
        if (token == bracket) return true;
    return false;
}

// pycocoevalcap's PUNCTUATIONS list, as it matches lower-cased PTB output.
bool is_dropped_punctuation(std::string_view token) {
    for (std::string_view p : {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"})
        if (token == p) return true;
    return false;
}

constexpr std::string_view kClitics[] = {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"};

bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// "u.s" (before its final period): single letters between periods.
bool is_letter_acronym(std::string_view word) {
    if (word.find('.') == std::string_view::npos) return false;
    for (size_t i = 0; i < word.size(); ++i) {
        bool letter_slot = i % 2 == 0;
        if (letter_slot ? !(word[i] >= 'a' && word[i] <= 'z') : word[i] != '.') return false;
    }
    return true;
}

bool keeps_final_period(std::string_view word) {
    return is_letter_acronym(word) || word == "mr" || word == "mrs" || word == "ms" || word == "dr";
}

class PtbLikeTokenizer {
public:
    explicit PtbLikeTokenizer(std::string text) : text_(std::move(text)) {}

    std::vector<std::string> run() {
        for (size_t i = 0; i < text_.size(); ++i) i = consume(i);
        flush_word();
        return std::move(tokens_);
    }

private:
    bool at_word_end(size_t i) const {  // nothing but a separator or split-off character follows
        if (i + 1 >= text_.size()) return true;
        char next = text_[i + 1];
        return is_python_whitespace(next) ||
               std::string_view("\"'`)]}!?,;:&*+=^|~$%").find(next) != std::string_view::npos;
    }

    size_t run_end(size_t i, std::string_view members) const {
        while (i < text_.size() && members.find(text_[i]) != std::string_view::npos) ++i;
        return i;
    }

    void emit(std::string token) {
        flush_word();
        tokens_.push_back(std::move(token));
    }

    // Handles text_[i] (and any run it starts); returns the index of the last character used.
    size_t consume(size_t i) {
        char c = text_[i];
        bool chunk_start = i == 0 || is_python_whitespace(text_[i - 1]);
        if (chunk_start) {
            // Already tokenized brackets stay as they are, so tokenizing is idempotent.
            size_t end = i;
            while (end < text_.size() && !is_python_whitespace(text_[end])) ++end;
            if (is_bracket_token(std::string_view(text_).substr(i, end - i))) {
                emit(text_.substr(i, end - i));
                return end - 1;
            }
        }
        if (is_python_whitespace(c)) {
            flush_word();
        } else if (const char* bracket = bracket_token(c)) {
            emit(bracket);
        } else if (c == '"' || c == '`') {
            emit("``");
        } else if (c == '!' || c == '?') {
            size_t end = run_end(i, "!?");
            emit(text_.substr(i, end - i));  // "!!!" is one token, and not a dropped one
            return end - 1;
        } else if (std::string_view("&*+=^|~$%;").find(c) != std::string_view::npos) {
            emit(std::string(1, c));
        } else if (c == ',' || c == ':') {
            bool inside_number = !word_.empty() && is_digit(word_.back()) &&
                                 i + 1 < text_.size() && is_digit(text_[i + 1]);
            if (inside_number) word_.push_back(c);
            else emit(std::string(1, c));
        } else if (c == '.') {
            size_t end = run_end(i, ".");
            if (end - i >= 2) {
                emit("...");
                return end - 1;
            }
            if (at_word_end(i) && !keeps_final_period(word_)) emit(".");
            else word_.push_back(c);
        } else if (c == '-') {
            size_t end = run_end(i, "-");
            if (end - i >= 2) {
                emit("--");
                return end - 1;
            }
            if (word_.empty() || at_word_end(i)) emit("-");
            else word_.push_back(c);
        } else {
            word_.push_back(c);
        }
        return i;
    }

    // Splits quotes and clitics off a finished word: "'favorite'", "dogs'", "can't", "man's".
    void flush_word() {
        if (word_.empty()) return;
        std::string word = std::move(word_);
        word_.clear();
        for (std::string_view clitic : kClitics)
            if (word == clitic) {  // already split off
                tokens_.push_back(word);
                return;
            }
        while (word.size() > 1 && word[0] == '\'' && !is_digit(word[1])) {  // opening quote
            tokens_.push_back("`");
            word.erase(0, 1);
        }
        bool closing_quote = word.size() > 1 && word.back() == '\'';
        if (closing_quote) word.pop_back();
        std::string clitic;
        for (std::string_view candidate : kClitics)
            if (word.size() > candidate.size() && ends_with(word, candidate)) {
                clitic = candidate;
                word.resize(word.size() - candidate.size());
                break;
            }
        static const std::pair<std::string_view, std::string_view> kSplitWords[] = {
            {"cannot", "can not"}, {"gonna", "gon na"}, {"gotta", "got ta"}, {"wanna", "wan na"}};
        bool split = false;
        for (const auto& [whole, parts] : kSplitWords)
            if (word == whole) {
                size_t space = parts.find(' ');
                tokens_.emplace_back(parts.substr(0, space));
                tokens_.emplace_back(parts.substr(space + 1));
                split = true;
            }
        if (!split) tokens_.push_back(word);
        if (!clitic.empty()) tokens_.push_back(clitic);
        if (closing_quote) tokens_.push_back("'");
    }

    std::string text_;
    std::string word_;
    std::vector<std::string> tokens_;
};

}  // namespace

std::array<double, 4> corpus_bleu(const std::vector<std::string>& candidates,
                                  const std::vector<std::vector<std::string>>& references,
                                  std::vector<std::array<double, 4>>* per_image) {
    check_corpus(candidates, references, "corpus_bleu");
    double total_candidate_length = 0, total_reference_length = 0;
    std::array<double, kMaxN> total_guessed{}, total_correct{};
    if (per_image) per_image->clear();
    for (size_t i = 0; i < candidates.size(); ++i) {
        BleuCounts counts = bleu_counts(candidates[i], references[i]);
        total_candidate_length += counts.candidate_length;
        total_reference_length += counts.reference_length;
        std::array<double, kMaxN> guessed{}, correct{};
        for (int n = 0; n < kMaxN; ++n) {
            guessed[n] = counts.guessed[n];
            correct[n] = counts.correct[n];
            total_guessed[n] += guessed[n];
            total_correct[n] += correct[n];
        }
        if (per_image)
            per_image->push_back(
                bleu_from_counts(counts.candidate_length, counts.reference_length, guessed, correct));
    }
    return bleu_from_counts(total_candidate_length, total_reference_length, total_guessed,
                            total_correct);
}

double rouge_l(const std::string& candidate, const std::vector<std::string>& references) {
    if (references.empty()) throw std::invalid_argument("rouge_l: no reference captions");
    const double beta = 1.2;
    std::vector<std::string> candidate_tokens = split_on_each_space(candidate);
    double best_precision = 0, best_recall = 0;
    for (const std::string& reference : references) {
        std::vector<std::string> reference_tokens = split_on_each_space(reference);
        double lcs = static_cast<double>(longest_common_subsequence(reference_tokens, candidate_tokens));
        best_precision = std::max(best_precision, lcs / static_cast<double>(candidate_tokens.size()));
        best_recall = std::max(best_recall, lcs / static_cast<double>(reference_tokens.size()));
    }
    if (best_precision == 0 || best_recall == 0) return 0.0;
    return ((1 + beta * beta) * best_precision * best_recall) /
           (best_recall + beta * beta * best_precision);
}

std::vector<double> cider_d(const std::vector<std::string>& candidates,
                            const std::vector<std::vector<std::string>>& references) {
    check_corpus(candidates, references, "cider_d");
    const double sigma = 6.0;

    std::vector<NgramCounts> candidate_counts;
    std::vector<std::vector<NgramCounts>> reference_counts(references.size());
    DocumentFrequency document_frequency;
    for (size_t i = 0; i < candidates.size(); ++i) {
        candidate_counts.push_back(count_ngrams(split_words(candidates[i])));
        // An n-gram counts once per image, however many of its references contain it.
        std::array<std::unordered_map<std::string, bool>, kMaxN> in_this_image;
        for (const std::string& reference : references[i]) {
            reference_counts[i].push_back(count_ngrams(split_words(reference)));
            for (int n = 0; n < kMaxN; ++n)
                for (const auto& entry : reference_counts[i].back()[n]) in_this_image[n][entry.first] = true;
        }
        for (int n = 0; n < kMaxN; ++n)
            for (const auto& entry : in_this_image[n]) document_frequency[n][entry.first] += 1.0;
    }

    const double log_corpus_size = std::log(static_cast<double>(candidates.size()));
    std::vector<double> scores;
    for (size_t i = 0; i < candidates.size(); ++i) {
        TfIdfVector candidate = tf_idf(candidate_counts[i], document_frequency, log_corpus_size);
        std::array<double, kMaxN> summed{};
        for (const NgramCounts& counts : reference_counts[i]) {
            TfIdfVector reference = tf_idf(counts, document_frequency, log_corpus_size);
            std::array<double, kMaxN> similarity = clipped_similarity(candidate, reference, sigma);
            for (int n = 0; n < kMaxN; ++n) summed[n] += similarity[n];
        }
        double mean_over_n = (summed[0] + summed[1] + summed[2] + summed[3]) / kMaxN;
        scores.push_back(mean_over_n / static_cast<double>(reference_counts[i].size()) * 10.0);
    }
    return scores;
}

CaptionScoresPerImage score_captions_per_image(
    const std::vector<std::string>& candidates,
    const std::vector<std::vector<std::string>>& references) {
    check_corpus(candidates, references, "score_captions");
    CaptionScoresPerImage result;
    result.corpus.bleu = corpus_bleu(candidates, references, &result.bleu);
    double rouge_sum = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
        result.rouge_l.push_back(rouge_l(candidates[i], references[i]));
        rouge_sum += result.rouge_l.back();
    }
    result.corpus.rouge_l = rouge_sum / static_cast<double>(candidates.size());
    result.cider_d = cider_d(candidates, references);
    double cider_sum = 0;
    for (double score : result.cider_d) cider_sum += score;
    result.corpus.cider_d = cider_sum / static_cast<double>(candidates.size());
    return result;
}

CaptionScores score_captions(const std::vector<std::string>& candidates,
                             const std::vector<std::vector<std::string>>& references) {
    return score_captions_per_image(candidates, references).corpus;
}

std::string coco_tokenize(std::string_view caption) {
    std::string lowered(caption);
    for (char& c : lowered)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    std::string joined;
    for (const std::string& token : PtbLikeTokenizer(std::move(lowered)).run()) {
        if (token.empty() || is_dropped_punctuation(token)) continue;
        if (!joined.empty()) joined.push_back(' ');
        joined += token;
    }
    return joined;
}

}  // namespace glimpse
