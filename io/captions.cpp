// Caption dataset readers (COCO, Karpathy split, Flickr token files) and the per-epoch pair order.
#include "io/captions.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace glimpse {
namespace {

using nlohmann::json;

bool is_ascii_whitespace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && is_ascii_whitespace(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_ascii_whitespace(text.back())) text.remove_suffix(1);
    return text;
}

std::string read_whole_file(const std::string& path, const char* where) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(std::string(where) + ": " + path + ": cannot open file");
    std::ostringstream contents;
    contents << in.rdbuf();
    if (in.bad()) throw std::runtime_error(std::string(where) + ": " + path + ": read error");
    return std::move(contents).str();
}

// Builds the whole document in memory (about 9x the file size: ~1.3 GB for the 146 MB Karpathy
// COCO file). nlohmann's filtering parse callback would drop the unused "tokens" arrays but runs
// about 4x slower, which costs more than the memory.
json parse_json_file(const std::string& path, const char* where) {
    std::string text = read_whole_file(path, where);
    try {
        return json::parse(text);
    } catch (const json::parse_error& e) {
        throw std::runtime_error(std::string(where) + ": " + path + ": invalid JSON at byte " +
                                 std::to_string(e.byte) + " (" + e.what() + ")");
    }
}

const json& require_array_member(const json& root, const char* key, const std::string& path,
                                 const char* where) {
    if (!root.is_object())
        throw std::runtime_error(std::string(where) + ": " + path + ": top level is " +
                                 root.type_name() + ", expected an object");
    auto found = root.find(key);
    if (found == root.end())
        throw std::runtime_error(std::string(where) + ": " + path + ": no \"" + key + "\" member");
    if (!found->is_array())
        throw std::runtime_error(std::string(where) + ": " + path + ": \"" + key + "\" is " +
                                 found->type_name() + ", expected an array");
    return *found;
}

// Why a record's member is unusable, or "" when it holds the wanted type.
std::string member_problem(const json& record, const char* key, json::value_t wanted) {
    auto found = record.find(key);
    if (found == record.end()) return std::string("no \"") + key + "\"";
    bool ok = wanted == json::value_t::number_integer ? found->is_number_integer()
                                                      : found->type() == wanted;
    if (ok) return "";
    return std::string("\"") + key + "\" is " + found->type_name() + ", expected " +
           (wanted == json::value_t::number_integer ? "an integer" : "a string");
}

bool get_int64(const json& value, int64_t& out) {
    if (value.is_number_unsigned()) {
        uint64_t u = value.get<uint64_t>();
        if (u > static_cast<uint64_t>(INT64_MAX)) return false;
        out = static_cast<int64_t>(u);
        return true;
    }
    if (!value.is_number_integer()) return false;
    out = value.get<int64_t>();
    return true;
}

// Records problems into the dataset: every one is counted, the first few are described.
class ProblemLog {
public:
    ProblemLog(CaptionDataset& dataset, size_t max_messages)
        : dataset_(dataset), max_messages_(max_messages) {}
    void record(size_t CaptionDataset::*counter, std::string message) {
        ++(dataset_.*counter);
        if (dataset_.problems.size() < max_messages_) dataset_.problems.push_back(std::move(message));
    }

private:
    CaptionDataset& dataset_;
    size_t max_messages_;
};

void add_caption(std::vector<std::string>& captions, std::string_view raw, ProblemLog& log,
                 const std::string& where) {
    std::string_view caption = trim(raw);
    if (caption.empty()) {
        log.record(&CaptionDataset::empty_captions, where + ": empty caption dropped");
        return;
    }
    captions.emplace_back(caption);
}

// Keeps the image unless it has no captions left or (when checked) its file does not exist.
void add_image(CaptionDataset& dataset, ProblemLog& log, CaptionedImage image,
               const CaptionReadOptions& options, const std::string& where) {
    if (image.captions.empty()) {
        log.record(&CaptionDataset::images_without_captions,
                   where + " (" + image.file_name + "): no captions, image skipped");
        return;
    }
    if (options.check_images) {
        std::error_code error;
        if (!std::filesystem::is_regular_file(image.path, error)) {
            log.record(&CaptionDataset::missing_image_files,
                       where + ": image file " + image.path + " not found, image skipped");
            return;
        }
    }
    dataset.images.push_back(std::move(image));
}

std::string join_path(const std::string& folder, const std::string& name) {
    return (std::filesystem::path(folder) / name).string();
}

}  // namespace

size_t CaptionDataset::caption_count() const {
    size_t total = 0;
    for (const CaptionedImage& image : images) total += image.captions.size();
    return total;
}

CaptionDataset read_coco_captions(const std::string& annotations_file, const std::string& image_dir,
                                  const CaptionReadOptions& options) {
    const char* where = "read_coco_captions";
    json root = parse_json_file(annotations_file, where);
    const json& images = require_array_member(root, "images", annotations_file, where);
    const json& annotations = require_array_member(root, "annotations", annotations_file, where);

    CaptionDataset dataset;
    dataset.source = annotations_file;
    ProblemLog log(dataset, options.max_problem_messages);
    std::vector<CaptionedImage> pending;
    std::unordered_map<int64_t, size_t> pending_by_id;

    for (size_t i = 0; i < images.size(); ++i) {
        const json& record = images[i];
        std::string at = annotations_file + ": images[" + std::to_string(i) + "]";
        std::string problem = !record.is_object()
            ? std::string("is ") + record.type_name() + ", expected an object"
            : member_problem(record, "id", json::value_t::number_integer);
        if (problem.empty()) problem = member_problem(record, "file_name", json::value_t::string);
        if (!problem.empty()) {
            log.record(&CaptionDataset::bad_records, at + ": " + problem + ", record skipped");
            continue;
        }
        CaptionedImage image;
        if (!get_int64(record["id"], image.image_id)) {
            log.record(&CaptionDataset::bad_records, at + ": \"id\" out of range, record skipped");
            continue;
        }
        if (!pending_by_id.emplace(image.image_id, pending.size()).second) {
            log.record(&CaptionDataset::bad_records,
                       at + ": repeats image id " + std::to_string(image.image_id) +
                           ", record skipped");
            continue;
        }
        image.file_name = record["file_name"].get<std::string>();
        image.path = join_path(image_dir, image.file_name);
        pending.push_back(std::move(image));
    }

    for (size_t i = 0; i < annotations.size(); ++i) {
        const json& record = annotations[i];
        std::string at = annotations_file + ": annotations[" + std::to_string(i) + "]";
        std::string problem = !record.is_object()
            ? std::string("is ") + record.type_name() + ", expected an object"
            : member_problem(record, "image_id", json::value_t::number_integer);
        if (problem.empty()) problem = member_problem(record, "caption", json::value_t::string);
        int64_t image_id = 0;
        if (problem.empty() && !get_int64(record["image_id"], image_id))
            problem = "\"image_id\" out of range";
        auto image = pending_by_id.end();
        if (problem.empty()) {
            image = pending_by_id.find(image_id);
            if (image == pending_by_id.end())
                problem = "image_id " + std::to_string(image_id) + " is not in \"images\"";
        }
        if (!problem.empty()) {
            log.record(&CaptionDataset::bad_records, at + ": " + problem + ", record skipped");
            continue;
        }
        add_caption(pending[image->second].captions, record["caption"].get_ref<const std::string&>(),
                    log, at);
    }

    for (CaptionedImage& image : pending) {
        std::string at = annotations_file + ": image id " + std::to_string(image.image_id);
        add_image(dataset, log, std::move(image), options, at);
    }
    return dataset;
}

CaptionDataset read_coco_split(const std::string& dir, const std::string& split,
                               const CaptionReadOptions& options) {
  namespace fs = std::filesystem;
  const fs::path annotations = fs::path(dir) / "annotations";
  if (!fs::is_directory(annotations))
    throw std::runtime_error(annotations.string() + " does not exist (expected a COCO-format directory "
                             "with annotations/captions_<split>.json and images/<split>/)");
  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(annotations)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("captions_" + split, 0) == 0 && entry.path().extension() == ".json")
      candidates.push_back(entry.path());
  }
  if (candidates.empty())
    throw std::runtime_error("no annotations/captions_" + split + "*.json in " + dir);
  std::sort(candidates.begin(), candidates.end());  // directory order is not portable
  const fs::path& file = candidates.front();
  const std::string stem = file.stem().string().substr(std::string("captions_").size());
  for (const fs::path& images :
       {fs::path(dir) / "images" / split, fs::path(dir) / stem, fs::path(dir) / "images" / stem})
    if (fs::is_directory(images)) return read_coco_captions(file.string(), images.string(), options);
  throw std::runtime_error("no image folder for " + file.string() + " (tried images/" + split + ", " +
                           stem + ", images/" + stem + ")");
}

CaptionDataset read_karpathy_split(const std::string& dataset_file, const std::string& image_root,
                                   const std::string& split, const CaptionReadOptions& options) {
    const char* where = "read_karpathy_split";
    if (split != "train" && split != "val" && split != "test" && split != "restval")
        throw std::invalid_argument(std::string(where) + ": unknown split \"" + split +
                                    "\" (expected train, val, test or restval)");
    auto wanted = [&](const std::string& record_split) {
        return record_split == split ||
               (split == "train" && options.train_includes_restval && record_split == "restval");
    };

    json root = parse_json_file(dataset_file, where);
    const json& images = require_array_member(root, "images", dataset_file, where);

    CaptionDataset dataset;
    dataset.source = dataset_file;
    ProblemLog log(dataset, options.max_problem_messages);
    for (size_t i = 0; i < images.size(); ++i) {
        const json& record = images[i];
        std::string at = dataset_file + ": images[" + std::to_string(i) + "]";
        std::string problem = !record.is_object()
            ? std::string("is ") + record.type_name() + ", expected an object"
            : member_problem(record, "split", json::value_t::string);
        if (problem.empty() && !wanted(record["split"].get_ref<const std::string&>())) continue;
        if (problem.empty()) problem = member_problem(record, "filename", json::value_t::string);
        if (problem.empty() && record.contains("filepath") && !record["filepath"].is_string())
            problem = std::string("\"filepath\" is ") + record["filepath"].type_name() +
                      ", expected a string";
        if (problem.empty()) {
            auto sentences = record.find("sentences");
            if (sentences == record.end()) problem = "no \"sentences\"";
            else if (!sentences->is_array())
                problem = std::string("\"sentences\" is ") + sentences->type_name() +
                          ", expected an array";
        }
        CaptionedImage image;
        image.image_id = static_cast<int64_t>(i);  // kept when the record has neither id
        const char* id_key = record.contains("cocoid") ? "cocoid" : "imgid";
        if (problem.empty() && record.contains(id_key)) {
            problem = member_problem(record, id_key, json::value_t::number_integer);
            if (problem.empty() && !get_int64(record[id_key], image.image_id))
                problem = std::string("\"") + id_key + "\" out of range";
        }
        if (!problem.empty()) {
            log.record(&CaptionDataset::bad_records, at + ": " + problem + ", record skipped");
            continue;
        }

        image.file_name = record["filename"].get<std::string>();
        std::string folder = image_root;
        if (record.contains("filepath"))
            folder = join_path(image_root, record["filepath"].get<std::string>());
        image.path = join_path(folder, image.file_name);

        const json& sentences = record["sentences"];
        for (size_t s = 0; s < sentences.size(); ++s) {
            std::string sentence_at = at + ".sentences[" + std::to_string(s) + "]";
            const json& sentence = sentences[s];
            std::string sentence_problem = !sentence.is_object()
                ? std::string("is ") + sentence.type_name() + ", expected an object"
                : member_problem(sentence, "raw", json::value_t::string);
            if (!sentence_problem.empty()) {
                log.record(&CaptionDataset::bad_records,
                           sentence_at + ": " + sentence_problem + ", caption skipped");
                continue;
            }
            add_caption(image.captions, sentence["raw"].get_ref<const std::string&>(), log,
                        sentence_at);
        }
        add_image(dataset, log, std::move(image), options, at);
    }
    return dataset;
}

CaptionDataset read_flickr_captions(const std::string& token_file, const std::string& image_dir,
                                    const std::string& split_list_file,
                                    const CaptionReadOptions& options) {
    const char* where = "read_flickr_captions";
    std::ifstream in(token_file, std::ios::binary);
    if (!in) throw std::runtime_error(std::string(where) + ": " + token_file + ": cannot open file");

    CaptionDataset dataset;
    dataset.source = token_file;
    ProblemLog log(dataset, options.max_problem_messages);
    std::vector<CaptionedImage> found;
    std::unordered_map<std::string, size_t> found_by_name;

    std::string line;
    for (size_t line_number = 1; std::getline(in, line); ++line_number) {
        std::string at = token_file + ":" + std::to_string(line_number);
        if (trim(line).empty()) continue;
        size_t tab = line.find('\t');
        if (tab == std::string::npos) {
            log.record(&CaptionDataset::bad_records,
                       at + ": no tab between image name and caption, line skipped");
            continue;
        }
        std::string_view key = trim(std::string_view(line).substr(0, tab));
        // "name.jpg#3": the number after '#' only says which of the image's captions this is.
        std::string name(key.substr(0, key.rfind('#')));
        if (name.empty()) {
            log.record(&CaptionDataset::bad_records, at + ": empty image name, line skipped");
            continue;
        }
        auto [entry, inserted] = found_by_name.emplace(name, found.size());
        if (inserted) {
            CaptionedImage image;
            image.file_name = name;
            image.path = join_path(image_dir, name);
            found.push_back(std::move(image));
        }
        add_caption(found[entry->second].captions, std::string_view(line).substr(tab + 1), log, at);
    }
    if (in.bad()) throw std::runtime_error(std::string(where) + ": " + token_file + ": read error");

    std::vector<size_t> order;  // indices into found, in output order
    if (split_list_file.empty()) {
        for (size_t i = 0; i < found.size(); ++i) order.push_back(i);
    } else {
        std::ifstream list(split_list_file, std::ios::binary);
        if (!list)
            throw std::runtime_error(std::string(where) + ": " + split_list_file +
                                     ": cannot open file");
        std::unordered_set<std::string> listed;
        for (size_t line_number = 1; std::getline(list, line); ++line_number) {
            std::string at = split_list_file + ":" + std::to_string(line_number);
            std::string name(trim(line));
            if (name.empty()) continue;
            if (!listed.insert(name).second) {
                log.record(&CaptionDataset::bad_records, at + ": " + name + " listed twice");
                continue;
            }
            auto entry = found_by_name.find(name);
            if (entry == found_by_name.end()) {
                log.record(&CaptionDataset::images_without_captions,
                           at + ": " + name + " has no captions in " + token_file +
                               ", image skipped");
                continue;
            }
            order.push_back(entry->second);
        }
    }

    for (size_t index : order) {
        CaptionedImage& image = found[index];
        // The Flickr photo id leads the file name ("1000268201_693b08cb0e.jpg").
        const char* first = image.file_name.data();
        const char* last = first + image.file_name.size();
        auto [end, error] = std::from_chars(first, last, image.image_id);
        if (error != std::errc() || end == first) image.image_id = static_cast<int64_t>(index);
        add_image(dataset, log, std::move(image), options, token_file);
    }
    return dataset;
}

std::string summarize_problems(const CaptionDataset& dataset) {
    std::string summary = "loaded " + std::to_string(dataset.images.size()) + " images, " +
                          std::to_string(dataset.caption_count()) + " captions";
    if (dataset.problem_count() == 0) return summary + "; no problems";
    summary += "; skipped:";
    const std::pair<size_t, const char*> parts[] = {
        {dataset.missing_image_files, "missing image files"},
        {dataset.images_without_captions, "images without captions"},
        {dataset.empty_captions, "empty captions"},
        {dataset.bad_records, "bad records"},
    };
    const char* separator = " ";
    for (const auto& [count, what] : parts) {
        if (count == 0) continue;
        summary += separator + std::to_string(count) + " " + what;
        separator = ", ";
    }
    for (const std::string& problem : dataset.problems) summary += "\n  " + problem;
    if (dataset.problems.size() < dataset.problem_count())
        summary += "\n  ... and " +
                   std::to_string(dataset.problem_count() - dataset.problems.size()) + " more";
    return summary;
}

uint64_t SplitMix64::next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
    if (bound == 0) throw std::invalid_argument("SplitMix64::below: bound must be >= 1");
    // The high word of x * bound is uniform in [0, bound) once the few x whose low word falls
    // under (2^64 mod bound) are rejected.
    unsigned __int128 product = static_cast<unsigned __int128>(next()) * bound;
    uint64_t low = static_cast<uint64_t>(product);
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            product = static_cast<unsigned __int128>(next()) * bound;
            low = static_cast<uint64_t>(product);
        }
    }
    return static_cast<uint64_t>(product >> 64);
}

std::vector<std::pair<size_t, size_t>> epoch_pairs(const CaptionDataset& dataset, uint64_t seed,
                                                   int epoch, bool all_pairs) {
    // Mixing both through SplitMix64 gives unrelated streams for neighbouring seeds and epochs.
    uint64_t epoch_key = SplitMix64(static_cast<uint64_t>(static_cast<int64_t>(epoch))).next();
    SplitMix64 rng(SplitMix64(seed ^ epoch_key).next());

    std::vector<std::pair<size_t, size_t>> pairs;
    pairs.reserve(all_pairs ? dataset.caption_count() : dataset.images.size());
    for (size_t i = 0; i < dataset.images.size(); ++i) {
        size_t captions = dataset.images[i].captions.size();
        if (captions == 0)
            throw std::invalid_argument("epoch_pairs: image " + std::to_string(i) + " (id " +
                                        std::to_string(dataset.images[i].image_id) +
                                        ") has no captions");
        if (all_pairs) {
            for (size_t c = 0; c < captions; ++c) pairs.emplace_back(i, c);
        } else {
            pairs.emplace_back(i, static_cast<size_t>(rng.below(captions)));
        }
    }
    // Fisher-Yates, from the back.
    for (size_t i = pairs.size(); i > 1; --i) {
        size_t j = static_cast<size_t>(rng.below(i));
        std::swap(pairs[i - 1], pairs[j]);
    }
    return pairs;
}

}  // namespace glimpse
