// Caption datasets: readers for COCO caption files, the Karpathy split file and Flickr8k/30k token
// files, all producing one CaptionDataset (images with every caption kept), plus the reproducible
// per-epoch order in which training visits (image, caption) pairs.
//
// A large load should not die on one bad record: per-record problems (a missing image file, an
// empty caption, a record with wrong JSON types) are skipped, counted and described in `problems`.
// Problems with the file as a whole (cannot open, invalid JSON, wrong top-level layout) throw
// std::runtime_error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace glimpse {

struct CaptionedImage {
    int64_t image_id = 0;
    std::string file_name;             // as the dataset names it
    std::string path;                  // image folder joined with the file name
    std::vector<std::string> captions; // raw text, leading/trailing whitespace trimmed
};

struct CaptionDataset {
    std::vector<CaptionedImage> images;
    std::string source;  // the file the captions were read from
    // One line per skipped or dropped item, up to CaptionReadOptions::max_problem_messages; the
    // counters below keep counting past that.
    std::vector<std::string> problems;
    size_t missing_image_files = 0;     // images skipped: the file does not exist
    size_t images_without_captions = 0; // images skipped: no usable caption
    size_t empty_captions = 0;          // captions dropped: empty or whitespace only
    size_t bad_records = 0;             // records skipped: wrong JSON types, unknown ids, bad lines

    size_t caption_count() const;
    size_t problem_count() const {
        return missing_image_files + images_without_captions + empty_captions + bad_records;
    }
};

struct CaptionReadOptions {
    bool check_images = true;           // skip images whose file does not exist
    bool train_includes_restval = false;// Karpathy: "train" also takes the "restval" images
    size_t max_problem_messages = 200;
};

// COCO captions JSON (captions_train2014.json, captions_val2017.json, the shapes dataset's files):
// {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "caption", ...}]}.
// Images keep the order of "images"; each image's captions keep the order of "annotations".
CaptionDataset read_coco_captions(const std::string& annotations_file, const std::string& image_dir,
                                  const CaptionReadOptions& options = {});

// One split of a COCO-format directory: DIR/annotations/captions_<split>*.json with its images in
// DIR/images/<split>/ (the shapes layout), DIR/<stem>/ or DIR/images/<stem>/ (COCO's own layout,
// e.g. captions_val2014.json with val2014/). Throws naming what it looked for.
CaptionDataset read_coco_split(const std::string& dir, const std::string& split,
                               const CaptionReadOptions& options = {});

// Karpathy's split file (dataset_coco.json, dataset_flickr8k.json, ...): {"images": [{"filepath",
// "filename", "split", "sentences": [{"raw", ...}], "cocoid" or "imgid"}]}. split is one of train,
// val, test, restval. The image path is image_root/filepath/filename (filepath may be absent, as in
// the Flickr files). The id is cocoid if present, else imgid, else the record's index.
CaptionDataset read_karpathy_split(const std::string& dataset_file, const std::string& image_root,
                                   const std::string& split, const CaptionReadOptions& options = {});

// Flickr8k / Flickr30k token file: lines "1000268201_693b08cb0e.jpg#0<TAB>A child in a pink ...".
// Images keep the order of their first line. With a split list file (one image file name per line,
// e.g. Flickr_8k.trainImages.txt) only those images are kept, in the list's order. The id is the
// file name's leading number (the Flickr photo id), else the image's position.
CaptionDataset read_flickr_captions(const std::string& token_file, const std::string& image_dir,
                                    const std::string& split_list_file = "",
                                    const CaptionReadOptions& options = {});

// "loaded 5000 images, 25010 captions; skipped: 3 missing image files, ..." followed by the first
// problem lines; meant for logs.
std::string summarize_problems(const CaptionDataset& dataset);

// The (image index, caption index) pairs one training epoch visits, shuffled. By default one
// caption per image, drawn afresh each epoch; with all_pairs every (image, caption). A function of
// (dataset caption counts, seed, epoch) only, identical on every machine and compiler.
std::vector<std::pair<size_t, size_t>> epoch_pairs(const CaptionDataset& dataset, uint64_t seed,
                                                   int epoch, bool all_pairs);

// Vigna's SplitMix64: small, fast, and fully specified (unlike std:: distributions, whose output
// differs between standard libraries), so shuffles are reproducible everywhere.
class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next();
    // Uniform in [0, bound), bound >= 1, without modulo bias (Lemire's multiply-and-reject).
    uint64_t below(uint64_t bound);

private:
    uint64_t state_;
};

}  // namespace glimpse
