// BLEU, ROUGE-L and CIDEr-D exactly as pycocoevalcap computes them. The order of floating-point
// operations follows the Python code where it could matter.
#include "models/caption_metrics.h"

#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace glimpse {
namespace {

constexpr int kMaxN = 4;

// Length in bytes of the Python whitespace character (str.isspace()) that starts text[i], or 0.
// PTB tokens can hold a no-break space ("5 1/2" is one token, written with U+00A0), and
// str.split() splits there, so the Unicode ones count too: U+0085, U+00A0, U+1680, U+2000-U+200A,
// U+2028, U+2029, U+202F, U+205F, U+3000, besides ASCII's \t-\r, \x1c-\x1f and space.
size_t python_whitespace_at(const std::string& text, size_t i) {
    const auto b = [&](size_t k) { return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0u; };
    const unsigned c = b(0);
    if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xC2 && (b(1) == 0x85 || b(1) == 0xA0)) return 2;
    if (c == 0xE1 && b(1) == 0x9A && b(2) == 0x80) return 3;  // U+1680
    if (c == 0xE2 && b(1) == 0x80 && ((b(2) >= 0x80 && b(2) <= 0x8A) || b(2) == 0xA8 || b(2) == 0xA9 || b(2) == 0xAF))
        return 3;  // U+2000-U+200A, U+2028, U+2029, U+202F
    if (c == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) return 3;  // U+205F
    if (c == 0xE3 && b(1) == 0x80 && b(2) == 0x80) return 3;  // U+3000
    return 0;
}

// str.split() with no argument: runs of whitespace separate words.
std::vector<std::string> split_words(const std::string& text) {
    std::vector<std::string> words;
    size_t i = 0, start = 0;
    while (i < text.size()) {
        const size_t space = python_whitespace_at(text, i);
        if (space == 0) {
            ++i;
            continue;
        }
        if (i > start) words.push_back(text.substr(start, i - start));
        i += space;
        start = i;
    }
    if (text.size() > start) words.push_back(text.substr(start));
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

CaptionScoresPerImage score_raw_captions_per_image(
    const std::vector<std::string>& candidates,
    const std::vector<std::vector<std::string>>& references) {
    check_corpus(candidates, references, "score_raw_captions");
    // pycocoevalcap tokenizes all references in one call and all candidates in another, each in
    // image order; a caption's last token can depend on the next caption, so the order matters.
    std::vector<std::string> flat;
    for (const auto& refs : references) flat.insert(flat.end(), refs.begin(), refs.end());
    const std::vector<std::string> tokenized_flat = coco_tokenize_batch(flat);
    std::vector<std::vector<std::string>> tokenized_references;
    size_t next = 0;
    for (const auto& refs : references) {
        tokenized_references.emplace_back(tokenized_flat.begin() + static_cast<std::ptrdiff_t>(next),
                                          tokenized_flat.begin() + static_cast<std::ptrdiff_t>(next + refs.size()));
        next += refs.size();
    }
    return score_captions_per_image(coco_tokenize_batch(candidates), tokenized_references);
}

CaptionScores score_raw_captions(const std::vector<std::string>& candidates,
                                 const std::vector<std::vector<std::string>>& references) {
    return score_raw_captions_per_image(candidates, references).corpus;
}

std::string format_score_table(const CaptionScores& scores) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer,
                "  metric      score\n  BLEU-1      %.4f\n  BLEU-2      %.4f\n  BLEU-3      %.4f\n"
                "  BLEU-4      %.4f\n  ROUGE-L     %.4f\n  CIDEr-D     %.4f\n",
                scores.bleu[0], scores.bleu[1], scores.bleu[2], scores.bleu[3], scores.rouge_l,
                scores.cider_d);
  return buffer;
}

}  // namespace glimpse
