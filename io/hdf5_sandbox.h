// Reading HDF5 files from outside in a separate process (used by io/hdf5.cpp; see
// docs/checkpoint-format.md, "Files from outside").
//
// libhdf5 1.10 trusts the structures it parses. A hostile or damaged file can make it read or
// write out of bounds (a crash, or worse, silent garbage) or walk a cyclic structure forever, and
// no check made before the call can rule that out: whether an out-of-bounds read faults depends
// on the memory around it. So H5File::open_read does not parse such a file in the calling process
// at all. It forks a reader process that opens the file and answers every read request over a
// socket; the caller only ever receives plain values (shapes, floats, strings). If the reader dies
// from a signal, or does not answer within its time limit, the request fails with a clear
// std::runtime_error naming the file, the reader is gone, and the program carries on.
//
// Environment:
//   GLIMPSE_HDF5_SANDBOX=0            read in-process (fuzzing with coverage, debugging)
//   GLIMPSE_HDF5_SANDBOX_TIMEOUT=S    seconds a request may go without progress (default 10)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "io/hdf5.h"

namespace glimpse {

// The lock every in-process HDF5 call holds (io/hdf5.cpp). A reader is forked while holding it, so
// that no other thread is halfway through an HDF5 call whose state the reader would inherit.
std::recursive_mutex& hdf5_library_mutex();

// True inside a reader process (it reads in-process and must not fork readers of its own).
bool in_hdf5_reader_process();
// Whether open_read should go through a reader process (GLIMPSE_HDF5_SANDBOX, not in a reader).
bool hdf5_sandbox_enabled();

// The read operations a reader process serves: one per H5File read method.
enum class H5Op : uint8_t {
  exists, is_group, is_dataset, list, shape, dtype_name, read, read_float, read_double, read_int64,
  read_int32, read_uint8, read_strings, read_rows, has_attr, attr_names, read_string_attr,
  read_string_array_attr, read_int_attr, read_double_attr,
};

// A request or an answer: values appended in order and read back in the same order.
class Wire {
 public:
  std::string bytes;

  template <typename T>
    requires std::is_arithmetic_v<T>
  void put(T value) {
    bytes.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void put(const std::string& text);
  template <typename T>
    requires std::is_arithmetic_v<T>
  void put(const std::vector<T>& values) {
    put(static_cast<uint64_t>(values.size()));
    if (!values.empty())
      bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  }
  void put(const std::vector<std::string>& values);
  void put(const std::vector<H5Child>& children);
  void put(const ArrayData& array);

  template <typename T>
    requires std::is_arithmetic_v<T>
  void get(T& value) {
    take(&value, sizeof value);
  }
  void get(std::string& text);
  template <typename T>
    requires std::is_arithmetic_v<T>
  void get(std::vector<T>& values) {
    values.resize(count(sizeof(T)));
    take(values.data(), values.size() * sizeof(T));
  }
  void get(std::vector<std::string>& values);
  void get(std::vector<H5Child>& children);
  void get(ArrayData& array);

  template <typename T>
  T get() {
    T value{};
    get(value);
    return value;
  }

 private:
  void take(void* out, size_t size);
  size_t count(size_t element_size);  // a length prefix, checked against the bytes left
  size_t position_ = 0;
};

// The calling side of one reader process.
class H5Reader {
 public:
  // Forks a reader that opens `path` with H5File::open_read in-process; rethrows its error.
  explicit H5Reader(const std::string& path);
  ~H5Reader();
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;

  template <typename Result, typename... Args>
  Result call(H5Op op, const Args&... args) {
    Wire request;
    request.put(static_cast<uint8_t>(op));
    (request.put(args), ...);
    Wire answer = exchange(request);
    return answer.get<Result>();
  }

 private:
  Wire exchange(const Wire& request);        // one request, one answer; rethrows the reader's error
  [[noreturn]] void fail_dead(const std::string& what);
  void stop();

  std::string path_;
  pid_t pid_ = -1;
  int socket_ = -1;
  double timeout_seconds_ = 10;
  std::string broken_;  // why the reader is gone, once it is
  std::mutex mutex_;    // one request at a time (H5File may be shared between threads)
};

}  // namespace glimpse
