// Writing files so that a crash or a full disk never leaves a half-written file under the final name:
// everything is written to a temporary sibling first and then renamed over the target, which POSIX
// guarantees to be atomic within one file system.
#pragma once

#include <string>

namespace glimpse {

// A fresh name next to `path` (same directory, so the final rename cannot cross file systems),
// unique per process and per call so concurrent writers never share a temporary file.
std::string temporary_path_for(const std::string& path);

// Renames `temporary` to `path`. On failure deletes `temporary` and throws std::runtime_error
// "<caller>: <path>: ..." with the system's reason.
void commit_temporary_file(const std::string& temporary, const std::string& path, const char* caller);

// Whether the data must reach the disk before the rename. Durable costs an fsync (milliseconds),
// which matters for the thousands of files of a generated dataset but not for a results file; and
// only the fsync reports a full disk or an I/O error that the file system noticed late.
enum class FileSync { Fast, Durable };

// Writes `contents` to `path` through a temporary file. Throws std::runtime_error naming `caller`,
// the path and the system's reason on any failure (write, flush, fsync, close, rename), leaving
// no temporary file behind.
void write_file_atomically(const std::string& path, const std::string& contents, const char* caller,
                           FileSync sync = FileSync::Fast);

}  // namespace glimpse
