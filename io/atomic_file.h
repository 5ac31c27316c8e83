// Writing files so that a crash or a full disk never leaves a half-written file under the final name:
// everything is written to a temporary sibling first and then renamed over the target, which POSIX
// guarantees to be atomic within one file system. This file is the one implementation of that
// protocol in glimpse; the HDF5 writer (io/hdf5.h, checkpoints and feature caches) uses it too.
//
// Durability is a separate question from atomicity. A rename is atomic, but after a power loss
// the file system may show the new name with data that never reached the disk: an empty or
// partial file under the final name. A durable commit prevents that: fsync the temporary file's
// data, rename, then fsync the directory so the rename itself is on disk.
#pragma once

#include <string>

namespace glimpse {

// A fresh name next to `path` (same directory, so the final rename cannot cross file systems),
// unique per process and per call so concurrent writers never share a temporary file.
std::string temporary_path_for(const std::string& path);

// Deletes the temporaries of `path` (temporary_path_for's names) whose writing process no longer
// runs: what a kill -9 or a power cut left behind. Another live process's temporary is kept (it
// may be writing right now), and so are this process's own. Scans the directory, so the writers
// of single important files call it (write_file_atomically, checkpoints), not the image writers
// of a dataset's thousands of files.
void remove_stale_temporaries(const std::string& path);

// Whether a commit waits for the disk. Durable costs two fsyncs (milliseconds), which matters for
// the thousands of files of a generated dataset but not for a results file or a checkpoint; and
// only the fsync reports a full disk or an I/O error that the file system noticed late.
enum class FileSync { Fast, Durable };

// Renames `temporary` to `path`; Durable first fsyncs `temporary` and afterwards `path`'s
// directory. On failure deletes `temporary` and throws std::runtime_error
// "<caller>: <path>: ..." with the system's reason (strerror: "No space left on device"...).
void commit_temporary_file(const std::string& temporary, const std::string& path, const char* caller,
                           FileSync sync = FileSync::Fast);

// The two halves of a durable commit, for writers that do something between them (the HDF5
// writer's fault-injection points). Both throw like commit_temporary_file; a file system that
// cannot fsync a directory (EINVAL) is accepted, as the rename has happened anyway.
void fsync_file(const std::string& path, const char* caller);
void fsync_directory_of(const std::string& path, const char* caller);

// Flushes everything written so far to disk (syncfs of the file system holding `path`): before a
// "this set of files is complete" marker, when the files themselves were committed Fast.
void sync_file_system_of(const std::string& path, const char* caller);

// Writes `contents` to `path` through a temporary file, first removing stale temporaries of `path`
// (remove_stale_temporaries). Throws std::runtime_error naming `caller`,
// the path and the system's reason on any failure (write, flush, fsync, close, rename), leaving
// no temporary file behind.
void write_file_atomically(const std::string& path, const std::string& contents, const char* caller,
                           FileSync sync = FileSync::Fast);

}  // namespace glimpse
