// tools/score end to end, as a user runs it: a COCO results file scored against COCO caption
// annotations must give pycocoevalcap's numbers (tests/data/score/, written by
// tests/golden/gen_ptb_tokenizer_fixture.py from pycocoevalcap's COCOEvalCap), and the files
// pycocoevalcap cannot score must be refused with a message and the documented exit status.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(GLIMPSE_TEST_DATA) + "/data/score/";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string read(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// A scratch folder, removed afterwards.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "glimpse-score-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() { fs::remove_all(path); }
};

struct Run {
    int status;
    std::string out, err;
};

// Runs tools/score with `args`; returns its exit status, stdout and stderr.
Run score(const TempDir& dir, const std::string& args) {
    const fs::path out = dir.path / "stdout.txt", err = dir.path / "stderr.txt";
    const std::string command = quoted(std::string(GLIMPSE_TOOLS_DIR) + "/score") + " " + args + " >" +
                                quoted(out.string()) + " 2>" + quoted(err.string());
    const int raw = std::system(command.c_str());
    REQUIRE(raw != -1);
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read(out), read(err)};
}

std::string files(const std::string& results, const std::string& annotations) {
    return "--results " + quoted(results) + " --annotations " + quoted(annotations);
}

}  // namespace

TEST_CASE("score gives pycocoevalcap's numbers on a results file") {
    TempDir dir;
    const fs::path out = dir.path / "scores.json";
    const Run run = score(dir, files(kData + "results.json", kData + "annotations.json") + " --out " + quoted(out.string()));
    CAPTURE(run.err);
    REQUIRE(run.status == 0);
    CHECK(run.out.find("scored 7 images (of 8") != std::string::npos);
    CHECK(run.out.find("CIDEr-D") != std::string::npos);

    const json got = json::parse(read(out));
    const json expected = json::parse(read(kData + "pycocoevalcap_scores.json"));
    // The tool writes doubles exactly (shortest round-trip form); what is left is pycocoevalcap's
    // own rounding (numpy means), far below 1e-12.
    const double tolerance = 1e-12;
    const json& e = expected["scores"];
    CHECK(got["images"] == 7);
    for (int n = 0; n < 4; ++n)
        CHECK(std::abs(got["bleu"][n].get<double>() - e["Bleu_" + std::to_string(n + 1)].get<double>()) < tolerance);
    CHECK(std::abs(got["rouge_l"].get<double>() - e["ROUGE_L"].get<double>()) < tolerance);
    CHECK(std::abs(got["cider_d"].get<double>() - e["CIDEr"].get<double>()) < tolerance);
    REQUIRE(got["per_image"].size() == expected["per_image"].size());
    for (const json& image : got["per_image"]) {
        const json& p = expected["per_image"][image["image_id"].dump()];
        CAPTURE(image["image_id"].dump());
        for (int n = 0; n < 4; ++n)
            CHECK(std::abs(image["bleu"][n].get<double>() - p["Bleu_" + std::to_string(n + 1)].get<double>()) < tolerance);
        CHECK(std::abs(image["rouge_l"].get<double>() - p["ROUGE_L"].get<double>()) < tolerance);
        CHECK(std::abs(image["cider_d"].get<double>() - p["CIDEr"].get<double>()) < tolerance);
    }
    // Images in the annotations' order (pycocoevalcap's), whatever the results' order.
    CHECK(got["per_image"][0]["image_id"] == 42);
    CHECK(got["per_image"][1]["image_id"] == 7);
}

TEST_CASE("score refuses what pycocoevalcap cannot score, exit status 1") {
    TempDir dir;
    const std::string annotations = kData + "annotations.json";
    const fs::path results = dir.path / "results.json";

    SUBCASE("an image_id that is not in the annotations") {
        write(results, R"([{"image_id": 42, "caption": "a man"}, {"image_id": 123456, "caption": "a dog"}])");
        const Run run = score(dir, files(results.string(), annotations));
        CHECK(run.status == 1);
        CHECK(run.err.find("not in") != std::string::npos);
        CHECK(run.err.find("123456") != std::string::npos);
        CHECK(run.err.find("Results do not correspond to current coco set") != std::string::npos);
    }
    SUBCASE("two captions for one image") {
        write(results, R"([{"image_id": 42, "caption": "a man"}, {"image_id": 7, "caption": "x"},
                          {"image_id": 42, "caption": "a surfer"}])");
        const Run run = score(dir, files(results.string(), annotations));
        CHECK(run.status == 1);
        CHECK(run.err.find("entry 2: image_id 42 already has a caption (entry 0)") != std::string::npos);
    }
    SUBCASE("an image without reference captions") {
        write(dir.path / "ann.json", R"({"images": [{"id": 1}, {"id": 2}],
                                          "annotations": [{"image_id": 1, "caption": "a cat"}]})");
        write(results, R"([{"image_id": 2, "caption": "a dog"}])");
        const Run run = score(dir, files(results.string(), (dir.path / "ann.json").string()));
        CHECK(run.status == 1);
        CHECK(run.err.find("has no reference captions") != std::string::npos);
    }
    SUBCASE("malformed files") {
        for (const char* text : {"[", "{\"image_id\": 42, \"caption\": \"x\"}", "[]", "[{\"image_id\": 42}]",
                                 "[{\"image_id\": 42, \"caption\": 5}]", "[{\"image_id\": [1], \"caption\": \"x\"}]"}) {
            CAPTURE(text);
            write(results, text);
            const Run run = score(dir, files(results.string(), annotations));
            CHECK(run.status == 1);
            CHECK(run.err.rfind("error: score: ", 0) == 0);
        }
        write(results, R"([{"image_id": 42, "caption": "a man"}])");
        CHECK(score(dir, files(results.string(), (dir.path / "missing.json").string())).status == 1);
        write(dir.path / "ann.json", R"({"images": []})");
        CHECK(score(dir, files(results.string(), (dir.path / "ann.json").string())).status == 1);
    }
    SUBCASE("an --out that cannot be written is refused before scoring") {
        write(results, R"([{"image_id": 42, "caption": "a man"}])");
        const Run run = score(dir, files(results.string(), annotations) + " --out " +
                                       quoted((dir.path / "no" / "such" / "dir" / "s.json").string()));
        CHECK(run.status == 1);
        CHECK(run.out.find("scored") == std::string::npos);
    }
}

TEST_CASE("score's command-line mistakes exit with status 2") {
    TempDir dir;
    CHECK(score(dir, "--annotations " + quoted(kData + "annotations.json")).status == 2);
    CHECK(score(dir, "--results " + quoted(kData + "results.json")).status == 2);
    CHECK(score(dir, files(kData + "results.json", kData + "annotations.json") + " --beam 3").status == 2);
    CHECK(score(dir, files(kData + "results.json", kData + "annotations.json") + " stray").status == 2);
    const Run help = score(dir, "--help");
    CHECK(help.status == 0);
    CHECK(help.out.find("--results") != std::string::npos);
}
