// Temporary-file-then-rename writing, shared by the image writers and the dataset generator.
#include "io/atomic_file.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace glimpse {

std::string temporary_path_for(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return path + ".tmp." + std::to_string(static_cast<long>(getpid())) + "." + std::to_string(counter++);
}

void commit_temporary_file(const std::string& temporary, const std::string& path, const char* caller) {
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temporary.c_str());
    throw std::runtime_error(std::string(caller) + ": " + path + ": cannot move the finished file into place (" +
                             reason + ")");
  }
}

void write_file_atomically(const std::string& path, const std::string& contents, const char* caller,
                           FileSync sync) {
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
  if (error == 0 && sync == FileSync::Durable && fsync(fileno(file)) != 0) failed();
  if (std::fclose(file) != 0 && error == 0) failed();
  if (error != 0) {
    std::remove(temporary.c_str());
    throw std::runtime_error(std::string(caller) + ": " + path + ": write failed (" + std::strerror(error) + ")");
  }
  commit_temporary_file(temporary, path, caller);
}

}  // namespace glimpse
