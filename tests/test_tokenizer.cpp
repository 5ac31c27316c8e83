// Tests for io/tokenizer: exact agreement with real Keras TextVectorization (fixture written by
// tests/golden/gen_tokenizer_fixture.py with tf-keras and Keras 3), plus round trips and errors.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/tokenizer.h"

using glimpse::Tokenizer;
using nlohmann::json;

namespace {

json load_fixture() {
    std::string path = std::string(GLIMPSE_TEST_DATA) + "/data/tokenizer_fixture.json";
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << path);
    return json::parse(in);
}

}  // namespace

TEST_CASE("standardize_caption matches the notebook's tf.strings standardize") {
    json fixture = load_fixture();
    for (const json& probe : fixture["standardize_probes"]) {
        std::string input = probe["input"];
        CHECK_MESSAGE(glimpse::standardize_caption(input) == probe["output"].get<std::string>(),
                      "input: " << input);
    }
}

TEST_CASE("split_on_whitespace matches tf.strings.split") {
    json fixture = load_fixture();
    for (const json& probe : fixture["split_probes"]) {
        std::string input = probe["input"];
        CHECK(glimpse::split_on_whitespace(input) == probe["tokens"].get<std::vector<std::string>>());
    }
}

TEST_CASE("adapt and encode equal Keras TextVectorization exactly") {
    json fixture = load_fixture();
    std::vector<std::string> corpus = fixture["corpus"];
    std::vector<std::string> texts;
    for (const std::string& caption : corpus) texts.push_back(glimpse::with_markers(caption));
    REQUIRE(texts == fixture["corpus_with_markers"].get<std::vector<std::string>>());
    std::vector<std::string> unseen = fixture["unseen"];

    REQUIRE(fixture["configs"].size() >= 2);
    for (const json& config : fixture["configs"]) {
        CAPTURE(config["name"].get<std::string>());
        Tokenizer tokenizer(config["sequence_length"].get<int>());
        tokenizer.adapt(texts, config["max_tokens"].get<size_t>());
        CHECK(tokenizer.vocabulary() == config["vocabulary"].get<std::vector<std::string>>());

        auto expected = config["encoded"].get<std::vector<std::vector<int32_t>>>();
        REQUIRE(expected.size() == texts.size());
        for (size_t i = 0; i < texts.size(); ++i)
            CHECK_MESSAGE(tokenizer.encode(texts[i]) == expected[i], "caption: " << texts[i]);

        auto expected_unseen = config["encoded_unseen"].get<std::vector<std::vector<int32_t>>>();
        REQUIRE(expected_unseen.size() == unseen.size());
        for (size_t i = 0; i < unseen.size(); ++i)
            CHECK_MESSAGE(tokenizer.encode(unseen[i]) == expected_unseen[i], "text: " << unseen[i]);
    }
}

TEST_CASE("a tokenizer rebuilt from its vocabulary encodes identically") {
    json fixture = load_fixture();
    std::vector<std::string> texts = fixture["corpus_with_markers"];
    Tokenizer adapted(12);
    adapted.adapt(texts, 0);
    Tokenizer restored(adapted.vocabulary(), 12);
    for (const std::string& text : texts) CHECK(restored.encode(text) == adapted.encode(text));
    for (size_t id = 0; id < adapted.vocabulary_size(); ++id) {
        const std::string& token = adapted.token_of(static_cast<int32_t>(id));
        CHECK(restored.id_of(token) == static_cast<int32_t>(id));
    }
}

TEST_CASE("special ids and lookups") {
    Tokenizer tokenizer(8);
    tokenizer.adapt({"<start> a red circle <end>", "<start> a blue square <end>"}, 0);
    CHECK(tokenizer.token_of(Tokenizer::kPaddingId).empty());
    CHECK(tokenizer.token_of(Tokenizer::kUnknownId) == "[UNK]");
    CHECK(tokenizer.id_of("a") == 2);  // a, <start>, <end> all count 2: "a" > "<start>" > "<end>"
    CHECK(tokenizer.id_of("<start>") == 3);
    CHECK(tokenizer.id_of("<end>") == 4);
    CHECK(tokenizer.id_of("hexagon") == Tokenizer::kUnknownId);
    CHECK_THROWS_AS(tokenizer.token_of(-1), std::out_of_range);
    CHECK_THROWS_AS(tokenizer.token_of(static_cast<int32_t>(tokenizer.vocabulary_size())),
                    std::out_of_range);
}

TEST_CASE("decode stops at padding and optionally drops the markers") {
    Tokenizer tokenizer(10);
    tokenizer.adapt({glimpse::with_markers("A small red circle.")}, 0);
    std::vector<int32_t> ids = tokenizer.encode(glimpse::with_markers("a small red circle"));
    CHECK(tokenizer.decode(ids) == "<start> a small red circle <end>");
    CHECK(tokenizer.decode(ids, true) == "a small red circle");

    // Anything after <end> (a sampled continuation) is not part of the caption.
    int32_t start = tokenizer.id_of("<start>"), end = tokenizer.id_of("<end>");
    int32_t red = tokenizer.id_of("red"), circle = tokenizer.id_of("circle");
    std::vector<int32_t> generated = {start, red, Tokenizer::kUnknownId, circle, end, red, 0, red};
    CHECK(tokenizer.decode(generated, true) == "red [UNK] circle");
    CHECK(tokenizer.decode(generated, false) == "<start> red [UNK] circle <end> red");
    CHECK(tokenizer.decode(std::vector<int32_t>{}).empty());
    CHECK_THROWS_AS(tokenizer.decode(std::vector<int32_t>{2, 999}), std::out_of_range);
}

TEST_CASE("encode truncates to the sequence length, keeping the first tokens") {
    Tokenizer tokenizer(3);
    tokenizer.adapt({"one two three four five"}, 0);
    std::vector<int32_t> ids = tokenizer.encode("five four three two one");
    REQUIRE(ids.size() == 3);
    CHECK(tokenizer.decode(ids) == "five four three");
    CHECK(tokenizer.encode("") == std::vector<int32_t>{0, 0, 0});
}

TEST_CASE("adapt with max_tokens 2 keeps only the specials; adapt replaces the vocabulary") {
    Tokenizer tokenizer(4);
    tokenizer.adapt({"x y z"}, 0);
    CHECK(tokenizer.vocabulary_size() == 5);
    tokenizer.adapt({"p q"}, 2);
    CHECK(tokenizer.vocabulary() == std::vector<std::string>{"", "[UNK]"});
    CHECK(tokenizer.encode("p") == std::vector<int32_t>{1, 0, 0, 0});
}

TEST_CASE("non-ASCII bytes pass through: only ASCII letters are lowercased") {
    CHECK(glimpse::standardize_caption("CAF\xC3\x89 Caf\xC3\xA9") == "caf\xC3\x89 caf\xC3\xA9");
    CHECK(glimpse::with_markers("a dog") == "<start> a dog <end>");
}

TEST_CASE("bad arguments are rejected with a message") {
    CHECK_THROWS_AS(Tokenizer(0), std::invalid_argument);
    CHECK_THROWS_AS(Tokenizer(std::vector<std::string>{"", "[UNK]"}, -5), std::invalid_argument);
    CHECK_THROWS_AS(Tokenizer(std::vector<std::string>{"[UNK]", ""}), std::invalid_argument);
    CHECK_THROWS_AS(Tokenizer(std::vector<std::string>{""}), std::invalid_argument);
    CHECK_THROWS_AS(Tokenizer(std::vector<std::string>{"", "[UNK]", "a", ""}), std::invalid_argument);
    try {
        Tokenizer(std::vector<std::string>{"", "[UNK]", "a", "b", "a"});
        FAIL("duplicate vocabulary accepted");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("\"a\"") != std::string::npos);
    }
    Tokenizer tokenizer;
    CHECK_THROWS_AS(tokenizer.adapt({"a"}, 1), std::invalid_argument);
}
