// Checkpoints: one HDF5 file with everything needed to resume training or to run inference.
// The layout is documented in docs/checkpoint-format.md (readable with plain h5py):
//
//   /                      attrs: format = "glimpse-checkpoint", format_version = 1,
//                                 model_config (JSON), progress (JSON), saved_at
//   /model/<name>          every parameter and buffer, by hierarchical name
//                          (e.g. /model/captioner/gru/kernel), float32
//   /optimizer/<name>      optimizer state (e.g. adam/m/captioner/gru/kernel); attrs type, iterations
//   /tokenizer/vocabulary  the vocabulary, id order, UTF-8 strings
//
// Saving is atomic (temporary file + fsync + rename), so a crash leaves the previous checkpoint.
// Loading checks the version, and every name and shape, and reports all mismatches at once.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/module.h"

namespace glimpse {

constexpr int64_t kCheckpointFormatVersion = 1;

struct CheckpointContents {
  nlohmann::json model_config;
  nlohmann::json progress;  // epoch, global_step, rng state, ...
  std::vector<std::string> vocabulary;
  std::string optimizer_type;
  int64_t optimizer_iterations = 0;
};

void save_checkpoint(const std::string& path, const std::vector<nn::NamedTensor>& model_state,
                     const std::string& optimizer_type,
                     const std::vector<nn::NamedTensor>& optimizer_state,
                     int64_t optimizer_iterations, const CheckpointContents& meta);

// Reads the metadata (config, progress, vocabulary, optimizer type/iterations) without tensors.
CheckpointContents read_checkpoint_meta(const std::string& path);

// Fills every tensor in `model_state` (and `optimizer_state` when not null) from the file.
// Throws one error listing every missing, unexpected or mis-shaped tensor; nothing is modified
// unless everything matches.
void load_checkpoint_tensors(const std::string& path, const std::vector<nn::NamedTensor>& model_state,
                             const std::vector<nn::NamedTensor>* optimizer_state = nullptr);

}  // namespace glimpse
