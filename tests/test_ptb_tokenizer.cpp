// Tests for models/ptb_tokenizer against pycocoevalcap's own tokenization (Stanford CoreNLP 3.4.1
// run by pycocoevalcap 1.2; fixture written by tests/golden/gen_ptb_tokenizer_fixture.py): a stress
// set of captions tokenized alone, batches where a caption's tokens depend on the next one, seeded
// random caption-like strings, Java's lower-casing of every character, the documented
// differences (asserted to still differ in the documented way), and the whole scoring pipeline.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/caption_metrics.h"
#include "models/ptb_tokenizer.h"

using nlohmann::json;
using Captions = std::vector<std::string>;

namespace {

json load(const std::string& relative) {
    const std::string path = std::string(GLIMPSE_TEST_DATA) + "/data/" + relative;
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << path);
    return json::parse(in);
}

const json& fixture() {
    static const json f = load("ptb_tokenizer_fixture.json");
    return f;
}

std::string join(const std::vector<std::string>& tokens) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
}

std::vector<std::string> joined_lines(const Captions& captions) {
    std::vector<std::string> out;
    for (const auto& tokens : glimpse::ptb_tokenize_batch(captions)) out.push_back(join(tokens));
    return out;
}

std::string utf8(char32_t c) {
    std::string s;
    if (c < 0x80) {
        s += static_cast<char>(c);
    } else if (c < 0x800) {
        s += static_cast<char>(0xC0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        s += static_cast<char>(0xE0 | (c >> 12));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (c >> 18));
        s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
    }
    return s;
}

}  // namespace

TEST_CASE("every stress caption tokenizes as pycocoevalcap tokenizes it alone") {
    const json& stress = fixture()["stress"];
    REQUIRE(stress.size() >= 10);
    size_t count = 0;
    for (const auto& [group, cases] : stress.items()) {
        CAPTURE(group);
        for (const json& c : cases) {
            const std::string raw = c["raw"];
            CAPTURE(raw);
            // What pycocoevalcap returns, and the Java tokens before it drops punctuation.
            CHECK(glimpse::coco_tokenize(raw) == c["coco"].get<std::string>());
            CHECK(joined_lines({raw}) == std::vector<std::string>{c["ptb"].get<std::string>()});
            ++count;
        }
    }
    CHECK(count >= 150);
}

TEST_CASE("batches: a caption's tokens depend on the next caption as in pycocoevalcap's one file") {
    for (const char* section : {"batches", "fuzz"}) {
        CAPTURE(section);
        const json& batches = fixture()[section];
        REQUIRE(batches.size() >= 15);
        for (const json& b : batches) {
            const Captions captions = b["captions"];
            CAPTURE(b["captions"].dump());
            CHECK(glimpse::coco_tokenize_batch(captions) == b["coco"].get<Captions>());
            CHECK(joined_lines(captions) == b["ptb"].get<Captions>());
        }
    }
    // The same caption alone and followed by a capitalised one: "etc." is then a sentence end.
    CHECK(glimpse::coco_tokenize_batch({"dogs, cats, etc.", "the end"}).front() == "dogs cats etc.");
    CHECK(glimpse::ptb_tokenize_batch({"dogs, cats, etc.", "The end"}).front().back() == ".");
    CHECK(glimpse::ptb_tokenize_batch({"dogs, cats, etc.", "the end"}).front().back() == "etc.");
    CHECK(glimpse::coco_tokenize_batch({}).empty());
}

TEST_CASE("lower-casing equals Java's String.toLowerCase(Locale.ENGLISH) for every character") {
    const json& mapping = fixture()["java_lowercase"];
    REQUIRE(mapping.size() > 1300);
    std::vector<bool> changed(0x110000, false);
    for (const json& entry : mapping) {
        const auto c = entry[0].get<char32_t>();
        changed[c] = true;
        CAPTURE(static_cast<uint32_t>(c));
        CHECK(glimpse::java_lowercase(utf8(c)) == entry[1].get<std::string>());
    }
    // And every other character is left alone (surrogates are not characters in UTF-8).
    size_t wrong = 0;
    for (char32_t c = 0; c < 0x110000; ++c) {
        if (changed[c] || (c >= 0xD800 && c <= 0xDFFF)) continue;
        const std::string s = utf8(c);
        if (glimpse::java_lowercase(s) != s) ++wrong;
    }
    CHECK(wrong == 0);
}

TEST_CASE("documented differences still differ, in the documented way") {
    const json& known = fixture()["known_differences"];

    SUBCASE("a line break other than \\n inside a caption") {
        REQUIRE(known["line_breaks"].size() == 6);
        for (const json& k : known["line_breaks"]) {
            CAPTURE(k["what"].get<std::string>());
            const Captions captions = k["captions"];
            // pycocoevalcap: the Java tokenizer starts a new line there, so the output has a line
            // too many and the next caption receives the rest of this one...
            CHECK(k["ptb_lines"].size() > captions.size());
            CHECK(k["coco"] != k["coco_if_space"]);
            // ...glimpse reads the character as a space, which is what pycocoevalcap gives then.
            CHECK(glimpse::coco_tokenize_batch(captions) == k["coco_if_space"].get<Captions>());
        }
    }

    SUBCASE("final sigma next to digits after an apostrophe") {
        for (const json& k : known["final_sigma"]) {
            const std::string raw = k["raw"];
            CAPTURE(raw);
            CHECK(glimpse::java_lowercase(raw) != k["java"].get<std::string>());
        }
    }

    SUBCASE("invalid UTF-8 reads as U+FFFD, which the Java tokenizer drops") {
        CHECK(glimpse::coco_tokenize("replacement \xff char") == "replacement char");
        CHECK(glimpse::coco_tokenize("a\xc3(b") == glimpse::coco_tokenize("a\xef\xbf\xbd(b"));
    }
}

TEST_CASE("pycocoevalcap's punctuation list") {
    for (const char* p : {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                          "--", "...", ";"})
        CHECK(glimpse::is_coco_punctuation(p));
    // Lower-cased brackets are not on it (its list is upper case, the tokens are lower case).
    for (const char* p : {"-lrb-", "-rsb-", "!!", "&", "'s", "n't", "", "a"}) CHECK_FALSE(glimpse::is_coco_punctuation(p));
}

TEST_CASE("raw captions scored end to end equal pycocoevalcap's COCOEvalCap") {
    const json annotations = load("score/annotations.json");
    const json results = load("score/results.json");
    const json expected = load("score/pycocoevalcap_scores.json");
    // pycocoevalcap's order: the annotation file's images that have a result, each image's
    // references in file order.
    std::vector<std::string> candidates;
    std::vector<std::vector<std::string>> references;
    std::vector<int64_t> ids;
    for (const json& image : annotations["images"]) {
        const int64_t id = image["id"];
        for (const json& r : results)
            if (r["image_id"] == id) {
                candidates.push_back(r["caption"]);
                ids.push_back(id);
                references.emplace_back();
                for (const json& a : annotations["annotations"])
                    if (a["image_id"] == id) references.back().push_back(a["caption"]);
            }
    }
    REQUIRE(candidates.size() == results.size());
    const glimpse::CaptionScoresPerImage s = glimpse::score_raw_captions_per_image(candidates, references);
    const json& e = expected["scores"];
    // Same tokens, same arithmetic: agreement to rounding (pycocoevalcap averages with numpy).
    const double tolerance = 1e-12;
    for (int n = 0; n < 4; ++n) CHECK(std::abs(s.corpus.bleu[n] - e["Bleu_" + std::to_string(n + 1)].get<double>()) < tolerance);
    CHECK(std::abs(s.corpus.rouge_l - e["ROUGE_L"].get<double>()) < tolerance);
    CHECK(std::abs(s.corpus.cider_d - e["CIDEr"].get<double>()) < tolerance);
    for (size_t i = 0; i < ids.size(); ++i) {
        const json& p = expected["per_image"][std::to_string(ids[i])];
        CAPTURE(ids[i]);
        for (int n = 0; n < 4; ++n) CHECK(std::abs(s.bleu[i][n] - p["Bleu_" + std::to_string(n + 1)].get<double>()) < tolerance);
        CHECK(std::abs(s.rouge_l[i] - p["ROUGE_L"].get<double>()) < tolerance);
        CHECK(std::abs(s.cider_d[i] - p["CIDEr"].get<double>()) < tolerance);
    }
}
