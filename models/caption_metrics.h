// Caption evaluation metrics with the coco-caption (pycocoevalcap) conventions, so the numbers
// equal pycocoevalcap's on the same tokenized captions: corpus BLEU-1..4, ROUGE-L, CIDEr-D; and
// coco_tokenize, a stand-in for its Java PTB tokenizer.
//
// Inputs are already tokenized strings (words separated by spaces, as coco_tokenize returns them).
// Splitting follows the Python code being matched: BLEU and CIDEr-D split on runs of whitespace
// (ASCII whitespace here), ROUGE-L splits on every single space.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

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

// Stand-in for pycocoevalcap's PTBTokenizer (Stanford CoreNLP with -lowerCase, then dropping the
// tokens '' ' `` ` . ? ! , : - -- ... ;). Lowercases ASCII and splits off what PTB splits:
// clitics ('s 're 've 'll 'd 'm n't), quotes, brackets (kept, as "-lrb-" etc., as pycocoevalcap
// keeps them: its punctuation list is upper case), & * + = ^ | ~ $ %, commas and colons not between
// digits, sentence-final periods, runs of ! and ? ("!!!" is kept, like PTB), dashes at word ends,
// and cannot/gonna/gotta/wanna. Periods of abbreviations with inner periods ("u.s.") and of
// mr./mrs./ms./dr. stay. Known differences from PTB: its long abbreviation list ("etc."), "#1"
// (PTB: "# 1"), "10am" (PTB: "10 am"), "'n'". Checked against real PTB output in the tests.
std::string coco_tokenize(std::string_view caption);

}  // namespace glimpse
