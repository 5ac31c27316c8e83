// Temporary-file-then-rename writing, shared by the image writers and the dataset generator.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace glimpse {

std::string temporary_path_for(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return path + ".tmp." + std::to_string(static_cast<long>(getpid())) + "." + std::to_string(counter++);
}

void remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path directory = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code error;
  for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    // "<pid>.<counter>", both decimal: anything else is not ours to delete.
    const std::string rest = name.substr(prefix.size());
    const size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot + 1 == rest.size() ||
        rest.find_first_not_of("0123456789.") != std::string::npos ||
        rest.find('.', dot + 1) != std::string::npos)
      continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

namespace {

[[noreturn]] void fail_with_errno(const char* caller, const std::string& path, const std::string& what, int error) {
  throw std::runtime_error(std::string(caller) + ": " + path + ": " + what + " (" + std::strerror(error) + ")");
}

std::string directory_of(const std::string& path) {
  const std::string directory = std::filesystem::path(path).parent_path().string();
  return directory.empty() ? "." : directory;
}

// fsync of an open()ed path; `directory` accepts EINVAL (some file systems cannot sync one).
void fsync_path(const std::string& path, bool directory, const char* caller, const std::string& what) {
  const int descriptor = ::open(path.c_str(), O_RDONLY | (directory ? O_DIRECTORY : 0));
  if (descriptor < 0) fail_with_errno(caller, path, "cannot open " + what + " to sync it", errno);
  const int status = ::fsync(descriptor);
  const int error = errno;
  ::close(descriptor);
  if (status != 0 && !(directory && error == EINVAL)) fail_with_errno(caller, path, "cannot sync " + what, error);
}

}  // namespace

void fsync_file(const std::string& path, const char* caller) { fsync_path(path, false, caller, "the file"); }

void fsync_directory_of(const std::string& path, const char* caller) {
  fsync_path(directory_of(path), true, caller, "the directory of " + path);
}

void sync_file_system_of(const std::string& path, const char* caller) {
  const int descriptor = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (descriptor < 0) fail_with_errno(caller, path, "cannot open its directory to sync it", errno);
  const int status = ::syncfs(descriptor);
  const int error = errno;
  ::close(descriptor);
  if (status != 0) fail_with_errno(caller, path, "cannot sync the file system", error);
}

void commit_temporary_file(const std::string& temporary, const std::string& path, const char* caller,
                           FileSync sync) {
  try {
    if (sync == FileSync::Durable) fsync_file(temporary, caller);
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary.c_str());
    fail_with_errno(caller, path, "cannot move the finished file into place", error);
  }
  if (sync == FileSync::Durable) fsync_directory_of(path, caller);
}

void write_file_atomically(const std::string& path, const std::string& contents, const char* caller,
                           FileSync sync) {
  remove_stale_temporaries(path);
  const std::string temporary = temporary_path_for(path);
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) {
    throw std::runtime_error(std::string(caller) + ": " + path + ": cannot create file (" + std::strerror(errno) + ")");
  }
  // Each step runs only if the previous ones succeeded, and the first failure's errno is kept:
  // a later fclose would overwrite it.
  int error = 0;
  const auto failed = [&error] { error = errno != 0 ? errno : EIO; };  // (a failure always has a reason)
  errno = 0;
  if (std::fwrite(contents.data(), 1, contents.size(), file) != contents.size()) failed();
  if (error == 0 && std::fflush(file) != 0) failed();
  if (std::fclose(file) != 0 && error == 0) failed();
  if (error != 0) {
    std::remove(temporary.c_str());
    throw std::runtime_error(std::string(caller) + ": " + path + ": write failed (" + std::strerror(error) + ")");
  }
  commit_temporary_file(temporary, path, caller, sync);
}

}  // namespace glimpse
