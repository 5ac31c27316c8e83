// Training batches for the captioner: seeded shuffles of (image, caption) pairs, decoded and
// resized on background threads while the model trains on the previous batch.
//
// A batch holds either preprocessed images [B, S, S, 3] or, with a feature cache, the frozen
// encoder's features [B, cells, C]; input ids [B, T] (the caption with <start>/<end>) and target
// ids [B, T] (the same shifted left by one, 0 last), as in the notebook.
// An image that cannot be read is dropped from its batch and counted, never fatal.
#pragma once
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io/captions.h"
#include "io/feature_cache.h"
#include "io/image.h"
#include "io/tokenizer.h"
#include "tensor/tensor.h"

namespace glimpse {

struct CaptionBatch {
  Tensor pixels_or_features;  // float32 [B, S, S, 3] or [B, cells, C]
  Tensor input_ids;           // int32 [B*k, T]: image i's k captions are rows i*k .. i*k+k-1
  Tensor target_ids;          // int32 [B*k, T]
  int captions_per_image = 1; // k
  std::vector<size_t> image_indices;
  int64_t size() const { return static_cast<int64_t>(image_indices.size()); }
};

struct BatcherOptions {
  int batch_size = 32;
  int image_size = 299;
  PixelScaling scaling = PixelScaling::Inception;
  uint64_t seed = 0;
  bool all_pairs = false;       // every (image, caption) pair per epoch instead of one caption
  // k captions of each image in the same batch (the one drawn for the epoch and the next k-1,
  // cyclically), so the encoder runs once for k decoder rows. Not combinable with all_pairs.
  int captions_per_image = 1;
  bool drop_remainder = true;   // as the notebook's dataset does
  // Keep decoded images in memory after the first epoch (small datasets such as shapes).
  bool cache_images = false;
  // Data-parallel training: this batcher serves rank `shard_index` of `shard_count`. A step's
  // global batch is batch_size * shard_count consecutive pairs of the epoch's shuffle (the same
  // on every rank: same seed), and this rank takes its shard_index-th slice of batch_size. So
  // every rank has the same number of steps (the remainder dropped, or with drop_remainder off
  // the last slices short or empty), and the ranks' slices together are exactly the batch one
  // process would take with batch_size * shard_count.
  int shard_index = 0;
  int shard_count = 1;
  // Return batches left empty (every image unreadable, or a short last global batch) instead of
  // skipping them: a rank of a data-parallel run must take part in every step's reductions.
  bool keep_empty_batches = false;
  std::shared_ptr<FeatureCache> feature_cache;  // when set, batches carry cached features
};

class CaptionBatcher {
 public:
  CaptionBatcher(const CaptionDataset& data, const Tokenizer& tokenizer, BatcherOptions options);
  ~CaptionBatcher();

  int64_t steps_per_epoch() const;  // in global batches (batch_size * shard_count)
  // Starts an epoch; the first `skip_steps` batches are skipped without loading (resume).
  void start_epoch(int epoch, int64_t skip_steps = 0);
  // The next batch of the epoch; false at its end.
  bool next(CaptionBatch& batch);
  int64_t bad_images() const;
  const std::vector<std::string>& bad_image_messages() const { return bad_messages_; }

  // Encodes one caption as (input ids, target ids) of the tokenizer's sequence length.
  static void caption_ids(const Tokenizer& tokenizer, const std::string& caption,
                          std::vector<int32_t>& input, std::vector<int32_t>& target);

 private:
  CaptionBatch load(int64_t step);
  std::launch launch_policy() const;
  const CaptionDataset& data_;
  const Tokenizer& tokenizer_;
  BatcherOptions options_;
  std::vector<std::pair<size_t, size_t>> pairs_;
  int64_t next_step_ = 0;
  std::future<CaptionBatch> pending_;
  std::vector<std::shared_ptr<const std::vector<float>>> image_cache_;
  mutable std::mutex mutex_;
  int64_t bad_images_ = 0;
  std::vector<std::string> bad_messages_;
};

// A tokenizer adapted (as Keras's TextVectorization.adapt) on every caption of `data`, each wrapped
// in <start> ... <end>, as the notebook does.
Tokenizer build_caption_tokenizer(const CaptionDataset& data, size_t max_tokens,
                                  int sequence_length);

// Reads and preprocesses one image file into [S, S, 3] floats (throws with the path on failure).
std::vector<float> load_image_for_model(const std::string& path, int size, PixelScaling scaling);

}  // namespace glimpse
