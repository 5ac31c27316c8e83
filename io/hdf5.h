// io/hdf5.h — a small RAII wrapper over the HDF5 C API: files, datasets and groups addressed by
// slash-separated paths, attributes, partial (row-range) reads for feature caches, and an atomic
// "write a temp file, fsync, rename" helper for checkpoints.
//
// Why a wrapper: the C API hands out integer ids that must each be closed with the right function,
// prints its own error stack to stderr, and converts types silently. Here every id is closed by a
// destructor, HDF5's stderr printing is switched off and its error stack becomes the text of a
// std::runtime_error, and reads check shapes and types.
//
// Thread safety: Debian's HDF5 is built without thread safety, so every call into HDF5 made by this
// file holds one process-wide lock. Several threads may therefore use H5File objects (even the same
// one) concurrently; their HDF5 calls simply run one at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace glimpse {

// A dense row-major array read from a file, converted to float.
struct ArrayData {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Element types a dataset can be created with. float16 is IEEE binary16 ("half"); floats written
// into it are rounded to nearest, ties to even (as numpy's astype(float16) does).
enum class H5DType { float16, float32, float64, int32, int64, uint8 };

// How a new dataset is laid out on disk.
struct DatasetOptions {
  // 0 = no compression; 1 (fast) .. 9 (small) = gzip level. Compression needs chunked storage.
  int gzip_level = 0;
  // Empty = contiguous storage, or, when compressing, chunks of whole rows of about 1 MiB.
  // Set it explicitly (e.g. {1, 64, 1536}) when readers fetch a few rows at a time.
  std::vector<int64_t> chunk_shape = {};
};

enum class H5ObjectKind { group, dataset, other };

class H5Reader;  // io/hdf5_sandbox.h

struct H5Child {
  std::string name;
  H5ObjectKind kind;
};

class H5File {
 public:
  // Errors (std::runtime_error naming the path): no such file, not an HDF5 file, truncated or
  // corrupt file, no permission.
  // open_read is for files from outside: unless GLIMPSE_HDF5_SANDBOX=0, the file is parsed by a
  // separate reader process (io/hdf5_sandbox.h), so a malformed file that crashes libhdf5 or
  // makes it loop ends in an error here or in a later read, never in a crash or a hang of the
  // caller. Declared sizes are checked against the file's size before anything is allocated.
  static H5File open_read(const std::string& path);
  static H5File open_read_write(const std::string& path);
  // Creates the file, replacing any existing one.
  static H5File create(const std::string& path);

  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  // Closes the file and ignores errors; call close() to see them.
  ~H5File();

  // Flushes and closes; throws if HDF5 could not write everything out. Safe to call twice.
  void close();
  void flush();
  bool is_open() const { return file_id_ >= 0 || reader_ != nullptr; }
  const std::string& path() const { return path_; }

  // ---- Structure. Paths are relative to the root; a leading '/' is optional; "/" is the root.
  bool exists(const std::string& object_path) const;
  bool is_group(const std::string& object_path) const;
  bool is_dataset(const std::string& object_path) const;
  // Creates the group and any missing parents; does nothing if it already exists.
  void create_group(const std::string& group_path);
  // Children of a group, sorted by name (byte order).
  std::vector<H5Child> list(const std::string& group_path = "/") const;
  // Unlinks a group or dataset (the file does not shrink).
  void remove(const std::string& object_path);

  // ---- Writing whole datasets. Each call creates the dataset (missing parent groups are created)
  // and throws if something already exists at that path. values.size() must equal the shape's
  // element count; an empty shape means a scalar.
  void write(const std::string& dataset_path, const std::vector<int64_t>& shape,
             std::span<const float> values, const DatasetOptions& options = {});
  void write(const std::string& dataset_path, const std::vector<int64_t>& shape,
             std::span<const double> values, const DatasetOptions& options = {});
  void write(const std::string& dataset_path, const std::vector<int64_t>& shape,
             std::span<const int32_t> values, const DatasetOptions& options = {});
  void write(const std::string& dataset_path, const std::vector<int64_t>& shape,
             std::span<const int64_t> values, const DatasetOptions& options = {});
  void write(const std::string& dataset_path, const std::vector<int64_t>& shape,
             std::span<const uint8_t> values, const DatasetOptions& options = {});
  // Stores float data as IEEE half precision (rounded to nearest even).
  void write_float16(const std::string& dataset_path, const std::vector<int64_t>& shape,
                     std::span<const float> values, const DatasetOptions& options = {});
  // A 1-D dataset of variable-length UTF-8 strings (e.g. a vocabulary too big for an attribute).
  void write_strings(const std::string& dataset_path, const std::vector<std::string>& values);

  // ---- Filling a big dataset piece by piece (e.g. a feature cache written batch by batch).
  // create_dataset makes a zero-filled dataset; write_rows overwrites rows
  // [first_row, first_row + values.size() / row_size) of a float16/float32/float64 dataset.
  void create_dataset(const std::string& dataset_path, const std::vector<int64_t>& shape,
                      H5DType storage, const DatasetOptions& options = {});
  void write_rows(const std::string& dataset_path, int64_t first_row,
                  std::span<const float> values);

  // ---- Reading.
  std::vector<int64_t> shape(const std::string& dataset_path) const;
  // "float16", "float32", "float64", "int8" ... "uint64", "string", or the HDF5 class name
  // ("compound", "opaque", ...) for types this wrapper does not convert.
  std::string dtype_name(const std::string& dataset_path) const;
  // Any integer or floating-point dataset, converted to float (float64 is rounded; integers
  // beyond 2^24 lose precision).
  ArrayData read(const std::string& dataset_path) const;
  // Typed reads that check the dataset's shape (throwing with both shapes in the message).
  std::vector<float> read_float(const std::string& dataset_path,
                                const std::vector<int64_t>& expected_shape) const;
  std::vector<double> read_double(const std::string& dataset_path,
                                  const std::vector<int64_t>& expected_shape) const;
  // Integer reads accept any integer dataset and throw if a value does not fit.
  std::vector<int64_t> read_int64(const std::string& dataset_path,
                                  const std::vector<int64_t>& expected_shape) const;
  std::vector<int32_t> read_int32(const std::string& dataset_path,
                                  const std::vector<int64_t>& expected_shape) const;
  std::vector<uint8_t> read_uint8(const std::string& dataset_path,
                                  const std::vector<int64_t>& expected_shape) const;
  // Scalar or 1-D string dataset, fixed- or variable-length.
  std::vector<std::string> read_strings(const std::string& dataset_path) const;

  // Rows [first_row, first_row + row_count) along the first axis of a numeric dataset of rank >= 1,
  // read without touching the rest of the file. The result's shape is {row_count, ...}.
  ArrayData read_rows(const std::string& dataset_path, int64_t first_row, int64_t row_count) const;
  // The same into a caller's buffer of exactly row_count * row_size floats (no allocation).
  void read_rows_into(const std::string& dataset_path, int64_t first_row, int64_t row_count,
                      std::span<float> out) const;

  // ---- Attributes on the root ("/"), a group or a dataset. Setting replaces an existing one.
  // Strings are written as variable-length UTF-8.
  void set_string_attr(const std::string& object_path, const std::string& name,
                       const std::string& value);
  void set_string_array_attr(const std::string& object_path, const std::string& name,
                             const std::vector<std::string>& values);
  void set_int_attr(const std::string& object_path, const std::string& name, int64_t value);
  void set_double_attr(const std::string& object_path, const std::string& name, double value);

  bool has_attr(const std::string& object_path, const std::string& name) const;
  // Attribute names sorted by name.
  std::vector<std::string> attr_names(const std::string& object_path) const;
  // Reads fixed- or variable-length strings (ASCII or UTF-8). read_string_attr accepts a scalar
  // or a one-element array. read_string_array_attr accepts a scalar (one element), a 1-D array,
  // or an empty attribute of any type (older Keras writes an empty float64 array for "no names").
  std::string read_string_attr(const std::string& object_path, const std::string& name) const;
  std::vector<std::string> read_string_array_attr(const std::string& object_path,
                                                  const std::string& name) const;
  // Scalar or one-element numeric attributes.
  int64_t read_int_attr(const std::string& object_path, const std::string& name) const;
  double read_double_attr(const std::string& object_path, const std::string& name) const;

 private:
  H5File(int64_t file_id, std::string path) : file_id_(file_id), path_(std::move(path)) {}
  static H5File open_existing(const char* function, const std::string& path, bool writable);
  void require_open(const char* function) const;

  int64_t file_id_ = -1;  // an HDF5 hid_t
  std::string path_;
  // Size of a file opened with open_read (not trusted: reads check declared sizes against it);
  // -1 for files this process creates or opens for writing.
  int64_t untrusted_size_ = -1;
  // Files from outside are read by a separate process (io/hdf5_sandbox.h); then file_id_ is -1
  // and every read goes through the reader.
  std::shared_ptr<H5Reader> reader_;
};

// Writes a file so that readers only ever see the old complete file or the new complete file:
// creates "<final_path>.tmp.<pid>.<n>" in the same directory (io/atomic_file.h, which also removes
// such files left by dead processes first), lets `fill` write into it, closes it,
// fsyncs it, renames it over final_path and fsyncs the directory. If `fill` (or any step before
// the rename) throws, the temp file is removed, any previous final_path is left untouched, and
// the exception propagates.
void write_file_atomically(const std::string& final_path, const std::function<void(H5File&)>& fill);

// IEEE binary16 conversions used for float16 datasets (round to nearest, ties to even;
// overflow gives infinity; NaN stays NaN).
uint16_t float_to_half_bits(float value);
float half_bits_to_float(uint16_t bits);

}  // namespace glimpse
