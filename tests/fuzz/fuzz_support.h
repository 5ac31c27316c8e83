// Shared pieces of the fuzz targets (tests/fuzz/README.md): a per-process file for APIs that only
// read by path, the rule that a thrown std::exception is a clean rejection, and a check that turns
// a broken invariant into a crash the fuzzer (or the replay test) reports.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>

namespace glimpse::fuzz {

// A file holding the current input, for readers that take a path (HDF5, the caption readers,
// read_png). One per process and per tag: libFuzzer's fork mode and `ctest -j` run several
// processes of one target at once, so the pid keeps them apart. It is rewritten for every input
// and removed at normal exit; a crashing input leaves it behind, which is why tests/fuzz/run.sh
// points TMPDIR at a folder of its own.
class InputFile {
 public:
  InputFile(const std::string& tag, const std::string& extension) {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/glimpse-fuzz-" + tag + "-" +
            std::to_string(::getpid()) + extension;
  }
  ~InputFile() { std::remove(path_.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // Replaces the file's contents with data[0, size) and returns its path. Failing to write is the
  // harness's problem, not the reader's, so it aborts rather than throwing a "rejection".
  const std::string& write(const uint8_t* data, size_t size) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (f == nullptr) {
      std::perror(path_.c_str());
      std::abort();
    }
    const bool ok = (size == 0 || std::fwrite(data, 1, size, f) == size);
    if (std::fclose(f) != 0 || !ok) {
      std::perror(path_.c_str());
      std::abort();
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `body`; a std::exception is how a reader refuses bad input, so it is swallowed. Anything
// else (another exception type reaching std::terminate, a signal, a sanitizer report, a hang) is
// left to crash the process: that is a finding. So is std::bad_alloc or std::length_error: they
// mean the input made the reader ask for more memory than exists, which it must refuse by
// checking sizes first — where the allocation is merely large, Linux grants it and the process is
// killed later, and under ASan or libFuzzer it is a report, so passing it as a "rejection" here
// would hide the bug in exactly the build without sanitizers. GLIMPSE_FUZZ_VERBOSE=1 prints each
// refusal and each acceptance, to see how far an input (a seed, a finding) gets.
inline bool verbose() {
  static const bool on = [] {
    const char* v = std::getenv("GLIMPSE_FUZZ_VERBOSE");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  return on;
}

template <class Body>
bool accepts(Body&& body) {
  try {
    body();
    if (verbose()) std::fprintf(stderr, "fuzz: accepted\n");
    return true;
  } catch (const std::bad_alloc& e) {
    std::fprintf(stderr, "fuzz: the input made the reader run out of memory (%s)\n", e.what());
    std::abort();
  } catch (const std::length_error& e) {
    std::fprintf(stderr, "fuzz: the input made the reader ask for an impossible size (%s)\n", e.what());
    std::abort();
  } catch (const std::exception& e) {
    if (verbose()) std::fprintf(stderr, "fuzz: rejected: %s\n", e.what());
    return false;
  }
}

// An invariant of a successful read. abort() rather than an exception, so that the harness's own
// checks are never mistaken for a clean rejection.
#define GLIMPSE_FUZZ_CHECK(condition)                                                       \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)

}  // namespace glimpse::fuzz
