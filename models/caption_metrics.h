// Caption evaluation metrics with the coco-caption (pycocoevalcap) conventions, so the numbers
// equal pycocoevalcap's: corpus BLEU-1..4, ROUGE-L, CIDEr-D. Its tokenizer (Stanford CoreNLP's
// PTB tokenizer, reproduced) is in models/ptb_tokenizer.h; score_raw_captions runs it the way
// pycocoevalcap does before scoring.
//
// The other functions take already tokenized strings (words separated by spaces, as
// coco_tokenize returns them). Splitting follows the Python code being matched: BLEU and CIDEr-D
// split on runs of whitespace as str.split() does, Unicode spaces included (a PTB token such as
// "5 1/2" holds a no-break space, so it counts as two words there), ROUGE-L splits on every single
// ASCII space.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "models/ptb_tokenizer.h"

namespace glimpse {

struct CaptionScores {
    std::array<double, 4> bleu{};  // BLEU-1..4 on the 0..1 scale
    double rouge_l = 0;            // 0..1
    double cider_d = 0;            // coco-caption's scale (x10), 0..~10
};

struct CaptionScoresPerImage {
    CaptionScores corpus;
    std::vector<std::array<double, 4>> bleu;  // pycocoevalcap's per-image BLEU list
    std::vector<double> rouge_l;
    std::vector<double> cider_d;
};

// references[i] are image i's reference captions (at least one); candidates[i] its generated one.
// Throws std::invalid_argument on mismatched sizes, an empty corpus or an image without references.
// The scores as the tools print them: a "metric score" table, one metric a line, 4 decimals.
std::string format_score_table(const CaptionScores& scores);

CaptionScores score_captions(const std::vector<std::string>& candidates,
                             const std::vector<std::vector<std::string>>& references);
CaptionScoresPerImage score_captions_per_image(
    const std::vector<std::string>& candidates,
    const std::vector<std::vector<std::string>>& references);

// pycocoevalcap Bleu(4): clipped n-gram counts pooled over the corpus, the "closest" reference
// length (ties to the shorter) for the brevity penalty, and its 1e-9 / 1e-15 smoothing terms.
// per_image, when given, receives the per-image list it also returns.
std::array<double, 4> corpus_bleu(const std::vector<std::string>& candidates,
                                  const std::vector<std::vector<std::string>>& references,
                                  std::vector<std::array<double, 4>>* per_image = nullptr);

// pycocoevalcap Rouge for one image: LCS-based precision and recall, each maximised over the
// references separately, combined as an F-measure with beta 1.2. The corpus score is the mean.
double rouge_l(const std::string& candidate, const std::vector<std::string>& references);

// pycocoevalcap Cider (which is CIDEr-D): tf-idf n-gram vectors (n = 1..4) with document
// frequencies from this corpus's references, clipped cosine similarity, a Gaussian length penalty
// (sigma 6) on the difference of the captions' lengths, averaged over n and references, times 10.
// Per-image scores; the corpus score is their mean. Meaningful only for a corpus of several images: with one, every idf weight is 0.
std::vector<double> cider_d(const std::vector<std::string>& candidates,
                            const std::vector<std::vector<std::string>>& references);

// Raw captions scored as pycocoevalcap scores them: the references of all images tokenized in one
// call (image by image, in order), the candidates in another, then the scores above. Same errors
// as score_captions.
CaptionScores score_raw_captions(const std::vector<std::string>& candidates,
                                 const std::vector<std::vector<std::string>>& references);
CaptionScoresPerImage score_raw_captions_per_image(
    const std::vector<std::string>& candidates,
    const std::vector<std::vector<std::string>>& references);

}  // namespace glimpse
