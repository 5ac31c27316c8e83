// Prints one line per tensor of a checkpoint (/model and /optimizer): its path, shape and an
// FNV-1a hash of its float bits, then the optimizer's iteration count and the progress record.
// Two checkpoints hold bit-identical training state exactly when their digests are equal
// (saved_at, the wall-clock time of the save, is left out). Used by kill_resume.sh.
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>

#include "io/checkpoint.h"
#include "io/hdf5.h"

using namespace glimpse;

namespace {

uint64_t fnv1a(const std::vector<float>& values) {
  uint64_t hash = 1469598103934665603ull;
  for (float value : values) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    for (int byte = 0; byte < 4; ++byte) {
      hash ^= (bits >> (8 * byte)) & 0xffu;
      hash *= 1099511628211ull;
    }
  }
  return hash;
}

void digest_group(const H5File& file, const std::string& group) {
  for (const H5Child& child : file.list(group)) {
    const std::string path = group + "/" + child.name;
    if (child.kind == H5ObjectKind::group) {
      digest_group(file, path);
    } else if (child.kind == H5ObjectKind::dataset) {
      ArrayData array = file.read(path);
      std::cout << path << " (";
      for (size_t i = 0; i < array.shape.size(); ++i) std::cout << (i ? "," : "") << array.shape[i];
      std::cout << ") " << std::hex << fnv1a(array.data) << std::dec << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: checkpoint_digest CHECKPOINT.h5\n";
    return 2;
  }
  try {
    H5File file = H5File::open_read(argv[1]);
    digest_group(file, "/model");
    if (file.exists("/optimizer")) digest_group(file, "/optimizer");
    CheckpointContents meta = read_checkpoint_meta(argv[1]);
    std::cout << "optimizer iterations " << meta.optimizer_iterations << "\nprogress " << meta.progress.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
