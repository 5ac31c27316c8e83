// Tests for models/caption_metrics: BLEU-1..4, ROUGE-L and CIDEr-D against pycocoevalcap's own
// scorers, and coco_tokenize against pycocoevalcap's Java PTB tokenizer (fixture written by
// tests/golden/gen_metrics_fixture.py), plus hand-checkable cases and argument errors.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/caption_metrics.h"

using nlohmann::json;
using Captions = std::vector<std::string>;
using References = std::vector<std::vector<std::string>>;

namespace {

json load_fixture() {
    std::string path = std::string(GLIMPSE_TEST_DATA) + "/data/metrics_fixture.json";
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << path);
    return json::parse(in);
}

constexpr double kTolerance = 1e-4;

}  // namespace

TEST_CASE("corpus and per-image scores equal pycocoevalcap's") {
    json fixture = load_fixture();
    REQUIRE(fixture["corpora"].size() >= 4);
    for (const auto& [name, corpus] : fixture["corpora"].items()) {
        CAPTURE(name);
        Captions candidates = corpus["candidates"];
        References references = corpus["references"];
        glimpse::CaptionScoresPerImage scores =
            glimpse::score_captions_per_image(candidates, references);

        auto bleu = corpus["bleu"].get<std::vector<double>>();
        for (int n = 0; n < 4; ++n) {
            CAPTURE(n);
            CHECK(std::abs(scores.corpus.bleu[n] - bleu[n]) < kTolerance);
        }
        CHECK(std::abs(scores.corpus.rouge_l - corpus["rouge_l"].get<double>()) < kTolerance);
        CHECK(std::abs(scores.corpus.cider_d - corpus["cider_d"].get<double>()) < kTolerance);

        auto bleu_per_image = corpus["bleu_per_image"].get<std::vector<std::vector<double>>>();
        auto rouge_per_image = corpus["rouge_l_per_image"].get<std::vector<double>>();
        auto cider_per_image = corpus["cider_d_per_image"].get<std::vector<double>>();
        REQUIRE(scores.bleu.size() == candidates.size());
        REQUIRE(scores.rouge_l.size() == candidates.size());
        REQUIRE(scores.cider_d.size() == candidates.size());
        for (size_t i = 0; i < candidates.size(); ++i) {
            CAPTURE(i);
            CAPTURE(candidates[i]);
            for (int n = 0; n < 4; ++n) CHECK(std::abs(scores.bleu[i][n] - bleu_per_image[i][n]) < kTolerance);
            CHECK(std::abs(scores.rouge_l[i] - rouge_per_image[i]) < kTolerance);
            CHECK(std::abs(scores.cider_d[i] - cider_per_image[i]) < kTolerance);
        }

        glimpse::CaptionScores corpus_only = glimpse::score_captions(candidates, references);
        CHECK(corpus_only.cider_d == scores.corpus.cider_d);
        CHECK(corpus_only.bleu == scores.corpus.bleu);
    }
}

TEST_CASE("coco_tokenize reproduces pycocoevalcap's PTB tokenization") {
    // The probes went through pycocoevalcap in one call, so they are tokenized as one batch here
    // (a caption's last token can depend on the next one; tests/test_ptb_tokenizer.cpp has more).
    json fixture = load_fixture();
    REQUIRE(fixture["ptb_tokenizer"].size() >= 20);
    Captions raw, expected;
    for (const json& probe : fixture["ptb_tokenizer"]) {
        raw.push_back(probe["raw"]);
        expected.push_back(probe["ptb"]);
    }
    const Captions tokenized = glimpse::coco_tokenize_batch(raw);
    REQUIRE(tokenized.size() == raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
        CHECK_MESSAGE(tokenized[i] == expected[i], "raw: " << raw[i]);
        // For these captions, tokenizing twice changes nothing (not true of every text: PTB
        // rewrites "``" and "''" from straight quotes, which pycocoevalcap then drops).
        CHECK_MESSAGE(glimpse::coco_tokenize(expected[i]) == expected[i], "tokenized: " << expected[i]);
    }
}

TEST_CASE("BLEU and CIDEr-D split on Unicode spaces as str.split() does, ROUGE-L only on ' '") {
    // PTB writes "5 1/2" as one token with a no-break space (U+00A0) inside. pycocoevalcap's BLEU
    // and CIDEr split it with str.split(); its ROUGE-L splits on " " only and keeps it whole.
    const std::string nbsp = "x\u00a0y", thin = "x\u2009y";
    CHECK(glimpse::corpus_bleu({nbsp}, {{"x y"}})[0] == doctest::Approx(1.0));
    CHECK(glimpse::corpus_bleu({thin}, {{"x y"}})[1] == doctest::Approx(1.0));
    CHECK(glimpse::rouge_l(nbsp, {"x y"}) == 0.0);
    CHECK(glimpse::rouge_l(nbsp, {nbsp}) == doctest::Approx(1.0));
    // Two images, so the idf weights are not all zero; identical split words (with 4-grams) give 10.
    std::vector<double> cider = glimpse::cider_d({"a\u00a0b c d", "p q r s"}, {{"a b c d"}, {"p q r s"}});
    CHECK(cider[0] == doctest::Approx(10.0));
    // Not whitespace for Python: U+200B (zero width space) keeps "x" and "y" together.
    CHECK(glimpse::corpus_bleu({"x\u200by"}, {{"x y"}})[0] < 1e-6);
}

TEST_CASE("hand-checkable values") {
    // ROUGE-L: LCS("a b c d", "a c d e") = 3, P = R = 3/4, F = 3/4 for any beta.
    CHECK(glimpse::rouge_l("a b c d", {"a c d e"}) == doctest::Approx(0.75));
    // P and R are maximised separately: P = 1 from the long reference, R = 1 from the short one.
    CHECK(glimpse::rouge_l("a b", {"a b c d e f", "a"}) == doctest::Approx(1.0));
    CHECK(glimpse::rouge_l("x y", {"a b"}) == 0.0);

    // BLEU-1 with clipping: "the the the the" against "the cat": 1 of 4 unigrams counts; the
    // candidate is longer than the reference, so no brevity penalty.
    std::array<double, 4> bleu = glimpse::corpus_bleu({"the the the the"}, {{"the cat"}});
    CHECK(bleu[0] == doctest::Approx(0.25));

    // Brevity penalty exp(1 - r/c) with the closest reference length (4, not 8).
    bleu = glimpse::corpus_bleu({"a b c"}, {{"a b c d", "a b c d e f g h"}});
    CHECK(bleu[0] == doctest::Approx(std::exp(1.0 - 4.0 / 3.0)));

    // CIDEr-D: identical captions whose n-grams appear in no other image score 10.
    std::vector<double> cider = glimpse::cider_d({"a b c d e", "f g h i j"}, {{"a b c d e"}, {"f g h i j"}});
    CHECK(cider[0] == doctest::Approx(10.0));
    CHECK(cider[1] == doctest::Approx(10.0));
}

TEST_CASE("bad arguments are rejected with a message") {
    CHECK_THROWS_AS(glimpse::score_captions({"a"}, {}), std::invalid_argument);
    CHECK_THROWS_AS(glimpse::score_captions({}, {}), std::invalid_argument);
    CHECK_THROWS_AS(glimpse::score_captions({"a", "b"}, {{"a"}, {}}), std::invalid_argument);
    CHECK_THROWS_AS(glimpse::rouge_l("a", {}), std::invalid_argument);
    try {
        glimpse::cider_d({"a", "b"}, {{"a"}});
        FAIL("mismatched sizes accepted");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("cider_d: 2 candidates but 1 reference lists") !=
              std::string::npos);
    }
}
