// A main() for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once on every file
// given (directories: every regular file in them, sorted), so the normal and the ASan builds
// replay the regression corpus and the seeds under `make test`.
//
// Usage: replay [--optional DIR]... PATH...
//   PATH that does not exist is an error (a typo must not pass as "nothing to replay");
//   --optional DIR is skipped when absent (a target without findings has no regressions folder).
// Each file's name is printed and flushed before it runs, so the log names an input that crashes.
// Exits non-zero when nothing at all was replayed.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

namespace {
bool collect(const fs::path& path, bool optional, std::vector<fs::path>& out) {
  std::error_code error;
  if (fs::is_directory(path, error)) {
    std::vector<fs::path> files;
    for (const fs::directory_entry& entry : fs::directory_iterator(path, error))
      if (entry.is_regular_file(error)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());  // directory order is not portable
    out.insert(out.end(), files.begin(), files.end());
    return true;
  }
  if (fs::is_regular_file(path, error)) {
    out.push_back(path);
    return true;
  }
  if (optional) return true;
  std::fprintf(stderr, "replay: %s: no such file or directory\n", path.c_str());
  return false;
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const bool optional = std::strcmp(argv[i], "--optional") == 0 && i + 1 < argc;
    if (optional) ++i;
    if (!collect(argv[i], optional, inputs)) return 2;
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no inputs to replay\n");
    return 2;
  }
  for (const fs::path& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
      std::fprintf(stderr, "replay: %s: read error\n", path.c_str());
      return 2;
    }
    std::printf("replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
    std::fflush(stdout);
    // libFuzzer never passes a null pointer, even for an empty input; neither do we.
    static const uint8_t kEmpty = 0;
    const uint8_t* data = bytes.empty() ? &kEmpty : reinterpret_cast<const uint8_t*>(bytes.data());
    LLVMFuzzerTestOneInput(data, bytes.size());
  }
  std::printf("replay: %zu inputs, no crash\n", inputs.size());
  return 0;
}
