// io/hdf5.cpp — the HDF5 wrapper: id ownership, error-stack translation, dataset and attribute
// reading/writing with type checks, half-precision conversion and atomic file replacement.

#include "io/hdf5.h"

#include "io/atomic_file.h"

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <tuple>
#include <stdexcept>
#include <type_traits>

#include "io/fault_injection.h"
#include "io/hdf5_sandbox.h"

namespace glimpse {

std::recursive_mutex& hdf5_library_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

static_assert(std::is_same_v<hid_t, int64_t>, "H5File stores hid_t as int64_t (HDF5 >= 1.10)");

namespace {

// ---------------------------------------------------------------------------------------------
// Library lock and error handling

// Held by every function that calls into HDF5. It also switches off HDF5's automatic printing of
// its error stack (we report errors ourselves) and clears any stale errors, so that a failure's
// message only contains what went wrong in this call.
class LibraryLock {
 public:
  // A reader process (hdf5_sandbox.h) has one thread, and its copy of the mutex may be locked
  // by a thread that does not exist there: it does not lock.
  LibraryLock() : guard_(hdf5_library_mutex(), std::defer_lock) {
    if (!in_hdf5_reader_process()) guard_.lock();
    // No cleanup at exit: after a failed write (a full disk) HDF5 keeps the half-closed file in
    // its tables, and its atexit handler then crashes trying to flush it again. Every H5File is
    // closed by its destructor, so there is nothing left for that handler to do. Only effective
    // before the library initialises, hence first.
    static const bool no_atexit = [] { return H5dont_atexit() >= 0; }();
    (void)no_atexit;
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    H5Eclear2(H5E_DEFAULT);
  }

 private:
  std::unique_lock<std::recursive_mutex> guard_;
};

herr_t collect_error_description(unsigned, const H5E_error2_t* error, void* client_data) {
  auto* descriptions = static_cast<std::vector<std::string>*>(client_data);
  std::string description = error->desc ? error->desc : "";
  if (description.empty() && error->func_name) description = error->func_name;
  if (!description.empty() && (descriptions->empty() || descriptions->back() != description))
    descriptions->push_back(description);
  return 0;
}

// The current HDF5 error stack from the API call down to the root cause, e.g.
// "unable to open file: file open failed: truncated file: eof = 2048, ...". Clears the stack.
std::string take_hdf5_error_stack() {
  std::vector<std::string> descriptions;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error_description, &descriptions);
  H5Eclear2(H5E_DEFAULT);
  std::string joined;
  for (const std::string& description : descriptions) {
    if (!joined.empty()) joined += ": ";
    joined += description;
  }
  return joined;
}

// Where an error happened: the public function and the file it was working on.
struct Where {
  const char* function;
  const std::string& file;
  // The file's size in bytes when it was opened from outside (open_read): reads then check what
  // the file declares against what it can hold. -1 for files this process creates and writes.
  int64_t untrusted_file_size = -1;
};

[[noreturn]] void fail(const Where& where, const std::string& what) {
  std::string message = std::string(where.function) + ": " + where.file + ": " + what;
  std::string hdf5_reason = take_hdf5_error_stack();
  if (!hdf5_reason.empty()) message += " (HDF5: " + hdf5_reason + ")";
  throw std::runtime_error(message);
}

[[noreturn]] void fail_argument(const Where& where, const std::string& what) {
  H5Eclear2(H5E_DEFAULT);
  throw std::invalid_argument(std::string(where.function) + ": " + where.file + ": " + what);
}

// Owns one HDF5 id and closes it with the function matching its kind.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  hid_t get() const { return id_; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

Handle checked(hid_t id, herr_t (*closer)(hid_t), const Where& where, const std::string& what) {
  if (id < 0) fail(where, what);
  return Handle(id, closer);
}

void check(herr_t status, const Where& where, const std::string& what) {
  if (status < 0) fail(where, what);
}

// ---------------------------------------------------------------------------------------------
// Paths, shapes, small helpers

std::vector<std::string> path_components(const std::string& path) {
  std::vector<std::string> components;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) components.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return components;
}

// "a/b", "/a/b" and "a/b/" all name "/a/b"; "" and "/" name the root.
std::string absolute_path(const std::string& path) {
  std::string result;
  for (const std::string& component : path_components(path)) {
    result += '/';
    result += component;
  }
  return result.empty() ? "/" : result;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1) text += ",";
  return text + ")";
}

// Elements of a shape. Throws when the product overflows what any read or write could hold
// (2^59 elements: even 16-byte elements then stay below 2^63 bytes); a hostile file can declare
// dimensions whose product wraps around.
constexpr int64_t kMaxElements = int64_t{1} << 59;
int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) throw std::invalid_argument("negative dimension in shape " + shape_string(shape));
    if (dim != 0 && count > kMaxElements / dim)
      throw std::overflow_error("shape " + shape_string(shape) + " has more than 2^59 elements");
    count *= dim;
  }
  return count;
}

std::string quoted(const std::string& text) { return "'" + text + "'"; }

// The IEEE binary16 layout, in the machine's byte order (memory) or little-endian (files, as
// h5py/numpy write it). HDF5 1.10 has no predefined half type.
Handle make_half_type(hid_t base_float32) {
  Handle type(H5Tcopy(base_float32), H5Tclose);
  if (type.get() < 0 || H5Tset_fields(type.get(), 15, 10, 5, 0, 10) < 0 ||
      H5Tset_size(type.get(), 2) < 0 || H5Tset_ebias(type.get(), 15) < 0)
    throw std::runtime_error("H5File: cannot build the IEEE half-precision HDF5 type (HDF5: " +
                             take_hdf5_error_stack() + ")");
  return type;
}

bool is_ieee_half(hid_t type) {
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 2) return false;
  size_t sign_pos, exponent_pos, exponent_size, mantissa_pos, mantissa_size;
  if (H5Tget_fields(type, &sign_pos, &exponent_pos, &exponent_size, &mantissa_pos, &mantissa_size) <
      0)
    return false;
  return sign_pos == 15 && exponent_pos == 10 && exponent_size == 5 && mantissa_pos == 0 &&
         mantissa_size == 10 && H5Tget_ebias(type) == 15;
}

std::string type_name(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
      return std::string(is_signed ? "int" : "uint") + std::to_string(8 * H5Tget_size(type));
    }
    case H5T_FLOAT:
      if (is_ieee_half(type)) return "float16";
      if (H5Tget_size(type) == 4) return "float32";
      if (H5Tget_size(type) == 8) return "float64";
      return "float" + std::to_string(8 * H5Tget_size(type)) + " (non-standard)";
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "vlen";
    case H5T_REFERENCE:
      return "reference";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_TIME:
      return "time";
    default:
      return "unknown";
  }
}

// Shape of a dataspace; a scalar has shape {}; a null dataspace has no elements at all.
std::vector<int64_t> dataspace_shape(hid_t space) {
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank <= 0) return {};
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

Handle make_dataspace(const std::vector<int64_t>& shape) {
  if (shape.empty()) return Handle(H5Screate(H5S_SCALAR), H5Sclose);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return Handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

Handle make_utf8_string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

// Frees the strings HDF5 allocated for a variable-length read. (1.10 declares H5Treclaim in its
// header but only 1.12 exports it.)
void reclaim_variable_length(hid_t memory_type, hid_t space, void* buffer) {
#if H5_VERSION_GE(1, 12, 0)
  H5Treclaim(memory_type, space, H5P_DEFAULT, buffer);
#else
  H5Dvlen_reclaim(memory_type, space, H5P_DEFAULT, buffer);
#endif
}

// Reads all elements of a string attribute or dataset, fixed- or variable-length.
// `read` performs H5Aread/H5Dread with the given memory type into the given buffer.
std::vector<std::string> read_string_elements(hid_t file_type, hid_t space, int64_t count,
                                              const std::function<herr_t(hid_t, void*)>& read,
                                              const Where& where, const std::string& what) {
  std::vector<std::string> values;
  values.reserve(static_cast<size_t>(count));
  if (count == 0) return values;
  // Copying the file's own type keeps its character set; HDF5 refuses ASCII<->UTF-8 conversion.
  Handle memory_type(H5Tcopy(file_type), H5Tclose);
  if (H5Tis_variable_str(file_type) > 0) {
    std::vector<char*> pointers(static_cast<size_t>(count), nullptr);
    check(read(memory_type.get(), pointers.data()), where, "cannot read " + what);
    for (char* pointer : pointers) values.emplace_back(pointer ? pointer : "");
    reclaim_variable_length(memory_type.get(), space, pointers.data());
    return values;
  }
  size_t width = H5Tget_size(file_type);
  std::vector<char> buffer(width * static_cast<size_t>(count));
  check(read(memory_type.get(), buffer.data()), where, "cannot read " + what);
  bool space_padded = H5Tget_strpad(file_type) == H5T_STR_SPACEPAD;
  for (int64_t i = 0; i < count; ++i) {
    const char* begin = buffer.data() + static_cast<size_t>(i) * width;
    size_t length = width;
    if (space_padded) {
      while (length > 0 && begin[length - 1] == ' ') --length;
    } else {
      length = static_cast<size_t>(std::find(begin, begin + width, '\0') - begin);
    }
    values.emplace_back(begin, length);
  }
  return values;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Half precision

uint16_t float_to_half_bits(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t exponent = (bits >> 23) & 0xffu;
  const uint32_t mantissa = bits & 0x7fffffu;

  if (exponent == 0xffu) {  // infinity or NaN; a NaN stays a (quiet) NaN
    if (mantissa == 0) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | (mantissa >> 13));
  }
  const int32_t half_exponent = static_cast<int32_t>(exponent) - 127 + 15;
  if (half_exponent >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // too big: infinity

  if (half_exponent <= 0) {
    // The result is a half subnormal m * 2^-24 (or zero). Below 2^-25 everything rounds to zero;
    // float subnormals land there too.
    if (half_exponent < -10) return sign;
    const uint32_t significand = mantissa | 0x800000u;  // restore the implicit leading 1
    const int shift = 14 - half_exponent;               // bits dropped: 14 .. 24
    uint32_t half_mantissa = significand >> shift;
    const uint32_t remainder = significand & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (half_mantissa & 1u))) ++half_mantissa;
    // A carry out of the mantissa correctly produces the smallest normal number.
    return static_cast<uint16_t>(sign | half_mantissa);
  }

  uint32_t result = (static_cast<uint32_t>(half_exponent) << 10) | (mantissa >> 13);
  const uint32_t remainder = mantissa & 0x1fffu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (result & 1u))) ++result;
  // A carry propagates into the exponent; from the largest finite value it yields infinity.
  return static_cast<uint16_t>(sign | result);
}

float half_bits_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exactly representable as a float.
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

// ---------------------------------------------------------------------------------------------
// Opening and closing

namespace {

Handle make_file_access_list() {
  Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // STRONG: closing the file really closes it (all objects), so fsync/rename after close() are
  // safe. V18 format: large attributes are allowed and every HDF5 >= 1.8 (and h5py) can read it.
  H5Pset_fclose_degree(access.get(), H5F_CLOSE_STRONG);
  H5Pset_libver_bounds(access.get(), H5F_LIBVER_V18, H5F_LIBVER_V18);
  return access;
}

htri_t file_has_hdf5_signature(const std::string& path) {
#if H5_VERSION_GE(1, 12, 0)
  return H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  return H5Fis_hdf5(path.c_str());
#endif
}

}  // namespace

namespace {

// H5Fopen failed although the signature was there: the file is damaged, cut short, or locked by
// another writer; HDF5's stack says which.
[[noreturn]] void fail_open(const Where& where) {
  std::string reason = take_hdf5_error_stack();
  std::string what = reason.find("truncated") != std::string::npos
                         ? "truncated HDF5 file"
                         : "cannot open the HDF5 file (corrupt, or locked by another writer)";
  throw std::runtime_error(std::string(where.function) + ": " + where.file + ": " + what +
                           " (HDF5: " + reason + ")");
}
}  // namespace

H5File H5File::open_existing(const char* function, const std::string& path, bool writable) {
  namespace fs = std::filesystem;
  LibraryLock lock;
  std::error_code error;
  fs::file_status status = fs::status(path, error);
  const int64_t size = fs::is_regular_file(status) ? static_cast<int64_t>(fs::file_size(path, error)) : 0;
  const Where where{function, path, size};
  if (!fs::exists(status)) fail(where, "no such file");
  if (fs::is_directory(status)) fail(where, "is a directory, not an HDF5 file");
  if (!fs::is_regular_file(status)) fail(where, "is not a regular file");
  if (::access(path.c_str(), writable ? (R_OK | W_OK) : R_OK) != 0)
    fail(where, std::string("cannot open (") + std::strerror(errno) + ")");

  htri_t signature = file_has_hdf5_signature(path);
  if (signature == 0) {
    H5Eclear2(H5E_DEFAULT);
    fail(where, size == 0 ? "not an HDF5 file (the file is empty)"
                          : "not an HDF5 file (no HDF5 signature in its first bytes)");
  }
  if (signature < 0) fail(where, "cannot read the file");

  Handle access = make_file_access_list();
  hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, access.get());
  if (id < 0) fail_open(where);
  H5File file(id, path);
  if (!writable) file.untrusted_size_ = size;
  return file;
}

H5File H5File::open_read(const std::string& path) {
  if (!hdf5_sandbox_enabled()) return open_existing("H5File::open_read", path, false);
  H5File file(-1, path);
  file.reader_ = std::make_shared<H5Reader>(path);
  return file;
}

H5File H5File::open_read_write(const std::string& path) {
  return open_existing("H5File::open_read_write", path, true);
}

H5File H5File::create(const std::string& path) {
  namespace fs = std::filesystem;
  LibraryLock lock;
  const Where where{"H5File::create", path};
  fs::path parent = fs::path(path).parent_path();
  std::error_code error;
  if (!parent.empty() && !fs::is_directory(parent, error))
    fail(where, "directory " + quoted(parent.string()) + " does not exist");
  Handle access = make_file_access_list();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get());
  if (id < 0) fail(where, "cannot create the file");
  return H5File(id, path);
}

H5File::H5File(H5File&& other) noexcept
    : file_id_(other.file_id_),
      path_(std::move(other.path_)),
      untrusted_size_(other.untrusted_size_),
      reader_(std::move(other.reader_)) {
  other.file_id_ = -1;
}

H5File& H5File::operator=(H5File&& other) noexcept {
  if (this != &other) {
    if (file_id_ >= 0) {
      LibraryLock lock;
      H5Fclose(file_id_);
      H5Eclear2(H5E_DEFAULT);
    }
    file_id_ = other.file_id_;
    path_ = std::move(other.path_);
    untrusted_size_ = other.untrusted_size_;
    reader_ = std::move(other.reader_);
    other.file_id_ = -1;
  }
  return *this;
}

H5File::~H5File() {
  if (file_id_ < 0) return;
  LibraryLock lock;
  H5Fclose(file_id_);
  H5Eclear2(H5E_DEFAULT);
}

void H5File::close() {
  reader_.reset();
  if (file_id_ < 0) return;
  LibraryLock lock;
  hid_t id = file_id_;
  file_id_ = -1;
  if (H5Fclose(id) < 0) fail({"H5File::close", path_}, "cannot close the file (data may be lost)");
}

void H5File::flush() {
  if (reader_) return;  // nothing to write
  require_open("H5File::flush");
  LibraryLock lock;
  check(H5Fflush(file_id_, H5F_SCOPE_GLOBAL), {"H5File::flush", path_}, "cannot flush the file");
}

void H5File::require_open(const char* function) const {
  // Read methods hand a file opened with open_read to its reader before calling this, so a
  // reader here means a write.
  if (reader_)
    throw std::logic_error(std::string(function) + ": " + path_ +
                           ": the file was opened read-only (open_read)");
  if (file_id_ < 0)
    throw std::logic_error(std::string(function) + ": " + path_ + ": the file is closed");
}

// ---------------------------------------------------------------------------------------------
// Structure

namespace {

// Opens any object (group, dataset, named type) by path.
Handle open_object(hid_t file, const std::string& object_path, const Where& where) {
  return checked(H5Oopen(file, absolute_path(object_path).c_str(), H5P_DEFAULT), H5Oclose, where,
                 "no object at " + quoted(object_path));
}

bool link_chain_exists(hid_t file, const std::string& object_path) {
  std::string prefix;
  for (const std::string& component : path_components(object_path)) {
    prefix += '/';
    prefix += component;
    // H5Lexists fails (rather than returning 0) when an earlier component is not a group.
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  // A soft link may point nowhere.
  htri_t target_exists = H5Oexists_by_name(file, absolute_path(object_path).c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return target_exists > 0;
}

// False for external and user-defined links: following one would open another file (any file
// the link names: /dev/zero, a FIFO, a huge file), which a reader of our formats never needs.
bool link_is_local(hid_t group, const char* name) {
  H5L_info_t info;
  if (H5Lget_info(group, name, &info, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  return info.type == H5L_TYPE_HARD || info.type == H5L_TYPE_SOFT;
}

H5ObjectKind object_kind(hid_t location, const char* name) {
  hid_t object = H5Oopen(location, name, H5P_DEFAULT);
  if (object < 0) {
    H5Eclear2(H5E_DEFAULT);
    return H5ObjectKind::other;
  }
  H5I_type_t type = H5Iget_type(object);
  H5Oclose(object);
  if (type == H5I_GROUP) return H5ObjectKind::group;
  if (type == H5I_DATASET) return H5ObjectKind::dataset;
  return H5ObjectKind::other;
}

Handle make_link_create_list() {
  Handle list(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(list.get(), 1);
  H5Pset_char_encoding(list.get(), H5T_CSET_UTF8);
  return list;
}

}  // namespace

bool H5File::exists(const std::string& object_path) const {
  if (reader_) return reader_->call<bool>(H5Op::exists, object_path);
  require_open("H5File::exists");
  LibraryLock lock;
  return link_chain_exists(file_id_, object_path);
}

bool H5File::is_group(const std::string& object_path) const {
  if (reader_) return reader_->call<bool>(H5Op::is_group, object_path);
  require_open("H5File::is_group");
  LibraryLock lock;
  return link_chain_exists(file_id_, object_path) &&
         object_kind(file_id_, absolute_path(object_path).c_str()) == H5ObjectKind::group;
}

bool H5File::is_dataset(const std::string& object_path) const {
  if (reader_) return reader_->call<bool>(H5Op::is_dataset, object_path);
  require_open("H5File::is_dataset");
  LibraryLock lock;
  return link_chain_exists(file_id_, object_path) &&
         object_kind(file_id_, absolute_path(object_path).c_str()) == H5ObjectKind::dataset;
}

void H5File::create_group(const std::string& group_path) {
  require_open("H5File::create_group");
  LibraryLock lock;
  const Where where{"H5File::create_group", path_};
  if (link_chain_exists(file_id_, group_path)) {
    if (object_kind(file_id_, absolute_path(group_path).c_str()) != H5ObjectKind::group)
      fail(where, quoted(group_path) + " already exists and is not a group");
    return;
  }
  Handle link_list = make_link_create_list();
  checked(H5Gcreate2(file_id_, absolute_path(group_path).c_str(), link_list.get(), H5P_DEFAULT,
                     H5P_DEFAULT),
          H5Gclose, where, "cannot create group " + quoted(group_path));
}

std::vector<H5Child> H5File::list(const std::string& group_path) const {
  if (reader_) return reader_->call<std::vector<H5Child>>(H5Op::list, group_path);
  require_open("H5File::list");
  LibraryLock lock;
  const Where where{"H5File::list", path_};
  if (!link_chain_exists(file_id_, group_path)) fail(where, "no group at " + quoted(group_path));
  Handle group = checked(H5Gopen2(file_id_, absolute_path(group_path).c_str(), H5P_DEFAULT),
                         H5Gclose, where, quoted(group_path) + " is not a group");
  H5G_info_t info;
  check(H5Gget_info(group.get(), &info), where, "cannot inspect group " + quoted(group_path));

  std::vector<H5Child> children;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t length = H5Lget_name_by_idx(group.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                        H5P_DEFAULT);
    if (length < 0) fail(where, "cannot read the names in group " + quoted(group_path));
    std::string name(static_cast<size_t>(length), '\0');
    H5Lget_name_by_idx(group.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                       name.size() + 1, H5P_DEFAULT);
    children.push_back({name, link_is_local(group.get(), name.c_str())
                                  ? object_kind(group.get(), name.c_str())
                                  : H5ObjectKind::other});
  }
  return children;
}

void H5File::remove(const std::string& object_path) {
  require_open("H5File::remove");
  LibraryLock lock;
  const Where where{"H5File::remove", path_};
  if (!link_chain_exists(file_id_, object_path)) fail(where, "no object at " + quoted(object_path));
  check(H5Ldelete(file_id_, absolute_path(object_path).c_str(), H5P_DEFAULT), where,
        "cannot remove " + quoted(object_path));
}

// ---------------------------------------------------------------------------------------------
// Writing datasets

namespace {

Handle make_dataset_create_list(const std::vector<int64_t>& shape, size_t element_bytes,
                                const DatasetOptions& options, const Where& where,
                                const std::string& dataset_path) {
  Handle create_list(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (options.gzip_level < 0 || options.gzip_level > 9)
    fail_argument(where, "gzip_level must be 0..9, got " + std::to_string(options.gzip_level));
  bool wants_chunks = options.gzip_level > 0 || !options.chunk_shape.empty();
  bool has_elements = element_count(shape) > 0;
  // Scalars and empty arrays cannot be chunked; they are tiny anyway.
  if (!wants_chunks || shape.empty() || !has_elements) return create_list;

  std::vector<hsize_t> chunk;
  if (!options.chunk_shape.empty()) {
    if (options.chunk_shape.size() != shape.size())
      fail_argument(where, "chunk shape " + shape_string(options.chunk_shape) + " for " +
                               quoted(dataset_path) + " does not match its rank " +
                               shape_string(shape));
    for (size_t axis = 0; axis < shape.size(); ++axis) {
      int64_t size = options.chunk_shape[axis];
      if (size <= 0 || size > shape[axis])
        fail_argument(where, "chunk shape " + shape_string(options.chunk_shape) +
                                 " must lie within the dataset shape " + shape_string(shape));
      chunk.push_back(static_cast<hsize_t>(size));
    }
  } else {
    // Whole rows, about 1 MiB per chunk: big enough to compress well, small enough that reading
    // a few rows does not decompress much more than needed.
    int64_t row_bytes = static_cast<int64_t>(element_bytes) * element_count(shape) / shape[0];
    int64_t rows =
        std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(row_bytes, 1), 1, shape[0]);
    chunk.assign(shape.begin(), shape.end());
    chunk[0] = static_cast<hsize_t>(rows);
  }
  check(H5Pset_chunk(create_list.get(), static_cast<int>(chunk.size()), chunk.data()), where,
        "cannot set chunking for " + quoted(dataset_path));
  if (options.gzip_level > 0) {
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
      fail(where, "this HDF5 library has no gzip (deflate) filter");
    // Byte shuffling groups the exponent bytes of floats together, which gzip compresses better.
    H5Pset_shuffle(create_list.get());
    check(H5Pset_deflate(create_list.get(), static_cast<unsigned>(options.gzip_level)), where,
          "cannot enable gzip for " + quoted(dataset_path));
  }
  return create_list;
}

Handle create_dataset_object(hid_t file, const std::string& dataset_path,
                             const std::vector<int64_t>& shape, hid_t file_type,
                             const DatasetOptions& options, const Where& where) {
  for (int64_t dim : shape)
    if (dim < 0) fail_argument(where, "negative dimension in shape " + shape_string(shape));
  if (absolute_path(dataset_path) == "/") fail_argument(where, "a dataset needs a name");
  if (link_chain_exists(file, dataset_path))
    fail(where,
         "cannot create dataset " + quoted(dataset_path) + ": something already exists there");
  Handle space = make_dataspace(shape);
  Handle create_list =
      make_dataset_create_list(shape, H5Tget_size(file_type), options, where, dataset_path);
  Handle link_list = make_link_create_list();
  return checked(H5Dcreate2(file, absolute_path(dataset_path).c_str(), file_type, space.get(),
                            link_list.get(), create_list.get(), H5P_DEFAULT),
                 H5Dclose, where, "cannot create dataset " + quoted(dataset_path));
}

void write_whole_dataset(hid_t file, const std::string& dataset_path,
                         const std::vector<int64_t>& shape, hid_t file_type, hid_t memory_type,
                         const void* values, size_t value_count, const DatasetOptions& options,
                         const Where& where) {
  if (static_cast<int64_t>(value_count) != element_count(shape))
    fail_argument(where, "dataset " + quoted(dataset_path) + ": shape " + shape_string(shape) +
                             " needs " + std::to_string(element_count(shape)) + " values, got " +
                             std::to_string(value_count));
  Handle dataset = create_dataset_object(file, dataset_path, shape, file_type, options, where);
  if (value_count == 0) return;
  check(H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), where,
        "cannot write dataset " + quoted(dataset_path));
}

}  // namespace

void H5File::write(const std::string& dataset_path, const std::vector<int64_t>& shape,
                   std::span<const float> values, const DatasetOptions& options) {
  require_open("H5File::write");
  LibraryLock lock;
  write_whole_dataset(file_id_, dataset_path, shape, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                      values.data(), values.size(), options, {"H5File::write", path_});
}

void H5File::write(const std::string& dataset_path, const std::vector<int64_t>& shape,
                   std::span<const double> values, const DatasetOptions& options) {
  require_open("H5File::write");
  LibraryLock lock;
  write_whole_dataset(file_id_, dataset_path, shape, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                      values.data(), values.size(), options, {"H5File::write", path_});
}

void H5File::write(const std::string& dataset_path, const std::vector<int64_t>& shape,
                   std::span<const int32_t> values, const DatasetOptions& options) {
  require_open("H5File::write");
  LibraryLock lock;
  write_whole_dataset(file_id_, dataset_path, shape, H5T_STD_I32LE, H5T_NATIVE_INT32, values.data(),
                      values.size(), options, {"H5File::write", path_});
}

void H5File::write(const std::string& dataset_path, const std::vector<int64_t>& shape,
                   std::span<const int64_t> values, const DatasetOptions& options) {
  require_open("H5File::write");
  LibraryLock lock;
  write_whole_dataset(file_id_, dataset_path, shape, H5T_STD_I64LE, H5T_NATIVE_INT64, values.data(),
                      values.size(), options, {"H5File::write", path_});
}

void H5File::write(const std::string& dataset_path, const std::vector<int64_t>& shape,
                   std::span<const uint8_t> values, const DatasetOptions& options) {
  require_open("H5File::write");
  LibraryLock lock;
  write_whole_dataset(file_id_, dataset_path, shape, H5T_STD_U8LE, H5T_NATIVE_UINT8, values.data(),
                      values.size(), options, {"H5File::write", path_});
}

void H5File::write_float16(const std::string& dataset_path, const std::vector<int64_t>& shape,
                           std::span<const float> values, const DatasetOptions& options) {
  require_open("H5File::write_float16");
  LibraryLock lock;
  // We round ourselves (ties to even) rather than trusting HDF5's soft float conversion, then
  // hand HDF5 ready-made half bits so it only has to copy them.
  std::vector<uint16_t> half_bits(values.size());
  std::transform(values.begin(), values.end(), half_bits.begin(), float_to_half_bits);
  Handle file_type = make_half_type(H5T_IEEE_F32LE);
  Handle memory_type = make_half_type(H5T_NATIVE_FLOAT);
  write_whole_dataset(file_id_, dataset_path, shape, file_type.get(), memory_type.get(),
                      half_bits.data(), half_bits.size(), options,
                      {"H5File::write_float16", path_});
}

void H5File::write_strings(const std::string& dataset_path,
                           const std::vector<std::string>& values) {
  require_open("H5File::write_strings");
  LibraryLock lock;
  std::vector<const char*> pointers;
  for (const std::string& value : values) pointers.push_back(value.c_str());
  Handle string_type = make_utf8_string_type();
  write_whole_dataset(file_id_, dataset_path, {static_cast<int64_t>(values.size())},
                      string_type.get(), string_type.get(), pointers.data(), pointers.size(), {},
                      {"H5File::write_strings", path_});
}

void H5File::create_dataset(const std::string& dataset_path, const std::vector<int64_t>& shape,
                            H5DType storage, const DatasetOptions& options) {
  require_open("H5File::create_dataset");
  LibraryLock lock;
  const Where where{"H5File::create_dataset", path_};
  Handle half_type;
  hid_t file_type = -1;
  switch (storage) {
    case H5DType::float16:
      half_type = make_half_type(H5T_IEEE_F32LE);
      file_type = half_type.get();
      break;
    case H5DType::float32:
      file_type = H5T_IEEE_F32LE;
      break;
    case H5DType::float64:
      file_type = H5T_IEEE_F64LE;
      break;
    case H5DType::int32:
      file_type = H5T_STD_I32LE;
      break;
    case H5DType::int64:
      file_type = H5T_STD_I64LE;
      break;
    case H5DType::uint8:
      file_type = H5T_STD_U8LE;
      break;
  }
  create_dataset_object(file_id_, dataset_path, shape, file_type, options, where);
}

// ---------------------------------------------------------------------------------------------
// Reading datasets

namespace {

// An open dataset with its type and shape, and the description used in error messages.
struct OpenDataset {
  Handle dataset;
  Handle type;
  Handle space;
  std::vector<int64_t> shape;
  int64_t elements = 0;
  std::string path;
};

OpenDataset open_dataset(hid_t file, const std::string& dataset_path, const Where& where) {
  if (!link_chain_exists(file, dataset_path)) fail(where, "no dataset " + quoted(dataset_path));
  OpenDataset opened;
  opened.path = dataset_path;
  opened.dataset = checked(H5Dopen2(file, absolute_path(dataset_path).c_str(), H5P_DEFAULT),
                           H5Dclose, where, quoted(dataset_path) + " is not a dataset");
  opened.type = checked(H5Dget_type(opened.dataset.get()), H5Tclose, where,
                        "cannot read the type of " + quoted(dataset_path));
  opened.space = checked(H5Dget_space(opened.dataset.get()), H5Sclose, where,
                         "cannot read the shape of " + quoted(dataset_path));
  if (H5Sget_simple_extent_type(opened.space.get()) == H5S_NULL)
    fail(where, "dataset " + quoted(dataset_path) + " has no dataspace (H5S_NULL)");
  opened.shape = dataspace_shape(opened.space.get());
  try {
    opened.elements = element_count(opened.shape);
  } catch (const std::exception& e) {
    fail(where, "dataset " + quoted(dataset_path) + ": " + e.what());
  }
  return opened;
}

// ---- Sizes a hostile file may declare
// A file can claim any shape. Before memory is allocated for a read, the claim is checked
// against what the file can actually hold and against the machine's memory, so that a 10 KB
// file cannot make us allocate terabytes (std::bad_alloc, or the OOM killer).

// Data a dataset may declare without storing it (HDF5 then returns its fill value, zeros).
constexpr int64_t kUnstoredBytesAllowed = int64_t{16} << 20;
// The most that compressed data can expand: deflate's limit is about 1032 to 1.
constexpr int64_t kMaxExpansion = 1100;

int64_t memory_limit_bytes() {
  static const int64_t limit = [] {
    long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page_size <= 0) return int64_t{1} << 40;
    return static_cast<int64_t>(pages) * page_size / 2;
  }();
  return limit;
}

std::string megabytes(int64_t bytes) {
  return std::to_string((bytes + (int64_t{1} << 20) - 1) >> 20) + " MB";
}

// Refuses a read of `elements` elements of `opened` (memory_element_bytes each once read) that
// the machine cannot hold, or, for an untrusted file, that the file cannot be storing.
void check_dataset_read(const OpenDataset& opened, int64_t elements, int64_t memory_element_bytes,
                        const Where& where) {
  const std::string name = "dataset " + quoted(opened.path) + " (shape " +
                           shape_string(opened.shape) + ")";
  const int64_t memory_bytes = elements * memory_element_bytes;  // elements <= 2^59, bytes <= 16
  if (memory_bytes > memory_limit_bytes())
    fail(where, name + " would need " + megabytes(memory_bytes) +
                    " of memory, more than half of this machine's");
  if (where.untrusted_file_size < 0) return;
  const int64_t file_size = where.untrusted_file_size;
  const int64_t stored_bytes = elements * static_cast<int64_t>(H5Tget_size(opened.type.get()));
  Handle create_list(H5Dget_create_plist(opened.dataset.get()), H5Pclose);
  if (create_list.get() < 0) fail(where, "cannot read the storage properties of " + name);
  if (H5Pget_external_count(create_list.get()) > 0)
    fail(where, name + " keeps its data in external files, which glimpse does not read");
  const H5D_layout_t layout = H5Pget_layout(create_list.get());
  if (layout == H5D_VIRTUAL)
    fail(where, name + " is a virtual dataset (its data lives in other files), which glimpse "
                       "does not read");
  if (layout == H5D_CONTIGUOUS) {
    const haddr_t offset = H5Dget_offset(opened.dataset.get());
    if (offset == HADDR_UNDEF) {
      H5Eclear2(H5E_DEFAULT);
      if (stored_bytes > kUnstoredBytesAllowed)
        fail(where, name + " declares " + megabytes(stored_bytes) +
                        " of data but the file stores none of it");
      return;
    }
    const int64_t whole_bytes = opened.elements * static_cast<int64_t>(H5Tget_size(opened.type.get()));
    if (offset > static_cast<haddr_t>(file_size) ||
        whole_bytes > file_size - static_cast<int64_t>(offset))
      fail(where, name + " claims " + std::to_string(whole_bytes) + " bytes at offset " +
                      std::to_string(offset) + ", beyond the end of the file (" +
                      std::to_string(file_size) + " bytes): the file is truncated or corrupt");
  } else if (layout == H5D_CHUNKED) {
    const int64_t storage = static_cast<int64_t>(H5Dget_storage_size(opened.dataset.get()));
    H5Eclear2(H5E_DEFAULT);
    if (storage > file_size)
      fail(where, name + " claims " + std::to_string(storage) + " bytes of chunks in a file of " +
                      std::to_string(file_size) + " bytes: the file is corrupt");
    if (stored_bytes > storage * kMaxExpansion + kUnstoredBytesAllowed)
      fail(where, name + " declares " + megabytes(stored_bytes) + " of data but stores only " +
                      std::to_string(storage) + " bytes, more than compression can account for");
  }
}

void require_numeric(const OpenDataset& opened, const Where& where) {
  H5T_class_t type_class = H5Tget_class(opened.type.get());
  if (type_class != H5T_INTEGER && type_class != H5T_FLOAT)
    fail(where, "dataset " + quoted(opened.path) + " holds " + type_name(opened.type.get()) +
                    " values, not numbers");
}

void require_shape(const OpenDataset& opened, const std::vector<int64_t>& expected_shape,
                   const Where& where) {
  if (opened.shape != expected_shape)
    fail(where, "dataset " + quoted(opened.path) + " has shape " + shape_string(opened.shape) +
                    ", expected " + shape_string(expected_shape));
}

// Reads the selected elements (file_space selection; H5S_ALL for everything) as floats.
// Half-precision data is converted by float_to_half_bits's inverse, everything else by HDF5.
void read_as_float(const OpenDataset& opened, hid_t memory_space, hid_t file_space, float* out,
                   size_t count, const Where& where) {
  require_numeric(opened, where);
  if (count == 0) return;
  if (is_ieee_half(opened.type.get())) {
    Handle memory_type = make_half_type(H5T_NATIVE_FLOAT);
    std::vector<uint16_t> half_bits(count);
    check(H5Dread(opened.dataset.get(), memory_type.get(), memory_space, file_space, H5P_DEFAULT,
                  half_bits.data()),
          where, "cannot read dataset " + quoted(opened.path));
    std::transform(half_bits.begin(), half_bits.end(), out, half_bits_to_float);
    return;
  }
  check(H5Dread(opened.dataset.get(), H5T_NATIVE_FLOAT, memory_space, file_space, H5P_DEFAULT, out),
        where, "cannot read dataset " + quoted(opened.path));
}

std::vector<int64_t> read_all_as_int64(const OpenDataset& opened, const Where& where) {
  if (H5Tget_class(opened.type.get()) != H5T_INTEGER)
    fail(where, "dataset " + quoted(opened.path) + " holds " + type_name(opened.type.get()) +
                    " values, not integers");
  check_dataset_read(opened, opened.elements, 8, where);
  size_t count = static_cast<size_t>(opened.elements);
  std::vector<int64_t> values(count);
  if (count == 0) return values;
  bool unsigned_64 =
      H5Tget_sign(opened.type.get()) == H5T_SGN_NONE && H5Tget_size(opened.type.get()) == 8;
  if (unsigned_64) {
    // HDF5 would silently clamp values above INT64_MAX; read them as they are and check.
    std::vector<uint64_t> raw(count);
    check(
        H5Dread(opened.dataset.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()),
        where, "cannot read dataset " + quoted(opened.path));
    for (size_t i = 0; i < count; ++i) {
      if (raw[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where, "dataset " + quoted(opened.path) + " holds " + std::to_string(raw[i]) +
                        ", which does not fit in int64");
      values[i] = static_cast<int64_t>(raw[i]);
    }
    return values;
  }
  check(
      H5Dread(opened.dataset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
      where, "cannot read dataset " + quoted(opened.path));
  return values;
}

template <typename Narrow>
std::vector<Narrow> narrow_integers(const std::vector<int64_t>& wide, const OpenDataset& opened,
                                    const char* type_label, const Where& where) {
  std::vector<Narrow> narrow(wide.size());
  for (size_t i = 0; i < wide.size(); ++i) {
    if (wide[i] < std::numeric_limits<Narrow>::min() ||
        wide[i] > std::numeric_limits<Narrow>::max())
      fail(where, "dataset " + quoted(opened.path) + " holds " + std::to_string(wide[i]) +
                      " at index " + std::to_string(i) + ", which does not fit in " + type_label);
    narrow[i] = static_cast<Narrow>(wide[i]);
  }
  return narrow;
}

// Selects rows [first_row, first_row + row_count) of a dataset and returns the selection's
// file space; row_size receives the number of elements per row.
Handle select_rows(const OpenDataset& opened, int64_t first_row, int64_t row_count,
                   int64_t& row_size, const Where& where) {
  if (opened.shape.empty())
    fail(where, "dataset " + quoted(opened.path) + " is a scalar; it has no rows");
  int64_t total_rows = opened.shape[0];
  if (first_row < 0 || row_count < 0 || first_row + row_count > total_rows)
    fail_argument(where, "rows [" + std::to_string(first_row) + ", " +
                             std::to_string(first_row + row_count) + ") are outside dataset " +
                             quoted(opened.path) + " of shape " + shape_string(opened.shape));
  row_size = element_count(std::vector<int64_t>(opened.shape.begin() + 1, opened.shape.end()));
  Handle file_space(H5Scopy(opened.space.get()), H5Sclose);
  std::vector<hsize_t> start(opened.shape.size(), 0),
      count(opened.shape.begin(), opened.shape.end());
  start[0] = static_cast<hsize_t>(first_row);
  count[0] = static_cast<hsize_t>(row_count);
  if (row_count == 0) {
    H5Sselect_none(file_space.get());
  } else {
    check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                              nullptr),
          where, "cannot select rows of " + quoted(opened.path));
  }
  return file_space;
}

}  // namespace

std::vector<int64_t> H5File::shape(const std::string& dataset_path) const {
  if (reader_) return reader_->call<std::vector<int64_t>>(H5Op::shape, dataset_path);
  require_open("H5File::shape");
  LibraryLock lock;
  return open_dataset(file_id_, dataset_path, {"H5File::shape", path_}).shape;
}

std::string H5File::dtype_name(const std::string& dataset_path) const {
  if (reader_) return reader_->call<std::string>(H5Op::dtype_name, dataset_path);
  require_open("H5File::dtype_name");
  LibraryLock lock;
  return type_name(open_dataset(file_id_, dataset_path, {"H5File::dtype_name", path_}).type.get());
}

ArrayData H5File::read(const std::string& dataset_path) const {
  if (reader_) return reader_->call<ArrayData>(H5Op::read, dataset_path);
  require_open("H5File::read");
  LibraryLock lock;
  const Where where{"H5File::read", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  ArrayData array;
  array.shape = opened.shape;
  require_numeric(opened, where);
  check_dataset_read(opened, opened.elements, 4, where);
  array.data.resize(static_cast<size_t>(opened.elements));
  read_as_float(opened, H5S_ALL, H5S_ALL, array.data.data(), array.data.size(), where);
  return array;
}

std::vector<float> H5File::read_float(const std::string& dataset_path,
                                      const std::vector<int64_t>& expected_shape) const {
  if (reader_) return reader_->call<std::vector<float>>(H5Op::read_float, dataset_path, expected_shape);
  require_open("H5File::read_float");
  LibraryLock lock;
  const Where where{"H5File::read_float", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  require_numeric(opened, where);
  require_shape(opened, expected_shape, where);
  check_dataset_read(opened, opened.elements, 4, where);
  std::vector<float> values(static_cast<size_t>(opened.elements));
  read_as_float(opened, H5S_ALL, H5S_ALL, values.data(), values.size(), where);
  return values;
}

std::vector<double> H5File::read_double(const std::string& dataset_path,
                                        const std::vector<int64_t>& expected_shape) const {
  if (reader_) return reader_->call<std::vector<double>>(H5Op::read_double, dataset_path, expected_shape);
  require_open("H5File::read_double");
  LibraryLock lock;
  const Where where{"H5File::read_double", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  require_numeric(opened, where);
  require_shape(opened, expected_shape, where);
  check_dataset_read(opened, opened.elements, 8, where);
  size_t count = static_cast<size_t>(opened.elements);
  std::vector<double> values(count);
  if (count == 0) return values;
  if (is_ieee_half(opened.type.get())) {
    std::vector<float> as_float(count);
    read_as_float(opened, H5S_ALL, H5S_ALL, as_float.data(), count, where);
    std::copy(as_float.begin(), as_float.end(), values.begin());
    return values;
  }
  check(H5Dread(opened.dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                values.data()),
        where, "cannot read dataset " + quoted(dataset_path));
  return values;
}

std::vector<int64_t> H5File::read_int64(const std::string& dataset_path,
                                        const std::vector<int64_t>& expected_shape) const {
  if (reader_) return reader_->call<std::vector<int64_t>>(H5Op::read_int64, dataset_path, expected_shape);
  require_open("H5File::read_int64");
  LibraryLock lock;
  const Where where{"H5File::read_int64", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  require_shape(opened, expected_shape, where);
  return read_all_as_int64(opened, where);
}

std::vector<int32_t> H5File::read_int32(const std::string& dataset_path,
                                        const std::vector<int64_t>& expected_shape) const {
  if (reader_) return reader_->call<std::vector<int32_t>>(H5Op::read_int32, dataset_path, expected_shape);
  require_open("H5File::read_int32");
  LibraryLock lock;
  const Where where{"H5File::read_int32", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  require_shape(opened, expected_shape, where);
  return narrow_integers<int32_t>(read_all_as_int64(opened, where), opened, "int32", where);
}

std::vector<uint8_t> H5File::read_uint8(const std::string& dataset_path,
                                        const std::vector<int64_t>& expected_shape) const {
  if (reader_) return reader_->call<std::vector<uint8_t>>(H5Op::read_uint8, dataset_path, expected_shape);
  require_open("H5File::read_uint8");
  LibraryLock lock;
  const Where where{"H5File::read_uint8", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  require_shape(opened, expected_shape, where);
  return narrow_integers<uint8_t>(read_all_as_int64(opened, where), opened, "uint8", where);
}

std::vector<std::string> H5File::read_strings(const std::string& dataset_path) const {
  if (reader_) return reader_->call<std::vector<std::string>>(H5Op::read_strings, dataset_path);
  require_open("H5File::read_strings");
  LibraryLock lock;
  const Where where{"H5File::read_strings", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  if (H5Tget_class(opened.type.get()) != H5T_STRING)
    fail(where, "dataset " + quoted(dataset_path) + " holds " + type_name(opened.type.get()) +
                    " values, not strings");
  if (opened.shape.size() > 1)
    fail(where, "dataset " + quoted(dataset_path) + " has shape " + shape_string(opened.shape) +
                    "; only scalar or 1-D string datasets are supported");
  // Each string costs at least a std::string once read (about 40 bytes with its pointer).
  check_dataset_read(opened, opened.elements,
                     std::max<int64_t>(40, static_cast<int64_t>(H5Tget_size(opened.type.get()))),
                     where);
  hid_t dataset = opened.dataset.get();
  return read_string_elements(
      opened.type.get(), opened.space.get(), opened.elements,
      [dataset](hid_t memory_type, void* buffer) {
        return H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
      },
      where, "dataset " + quoted(dataset_path));
}

ArrayData H5File::read_rows(const std::string& dataset_path, int64_t first_row,
                            int64_t row_count) const {
  if (reader_) return reader_->call<ArrayData>(H5Op::read_rows, dataset_path, first_row, row_count);
  require_open("H5File::read_rows");
  LibraryLock lock;
  const Where where{"H5File::read_rows", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  require_numeric(opened, where);
  int64_t row_size = 0;
  Handle file_space = select_rows(opened, first_row, row_count, row_size, where);
  ArrayData array;
  array.shape = opened.shape;
  array.shape[0] = row_count;
  check_dataset_read(opened, row_count * row_size, 4, where);
  array.data.resize(static_cast<size_t>(row_count * row_size));
  if (array.data.empty()) return array;
  hsize_t memory_count = array.data.size();
  Handle memory_space(H5Screate_simple(1, &memory_count, nullptr), H5Sclose);
  read_as_float(opened, memory_space.get(), file_space.get(), array.data.data(), array.data.size(),
                where);
  return array;
}

void H5File::read_rows_into(const std::string& dataset_path, int64_t first_row, int64_t row_count,
                            std::span<float> out) const {
  if (reader_) {
    ArrayData rows = reader_->call<ArrayData>(H5Op::read_rows, dataset_path, first_row, row_count);
    if (rows.data.size() != out.size())
      throw std::invalid_argument("H5File::read_rows_into: " + path_ + ": output buffer holds " +
                                  std::to_string(out.size()) + " floats, but " +
                                  std::to_string(row_count) + " rows of " + quoted(dataset_path) +
                                  " need " + std::to_string(rows.data.size()));
    std::copy(rows.data.begin(), rows.data.end(), out.begin());
    return;
  }
  require_open("H5File::read_rows_into");
  LibraryLock lock;
  const Where where{"H5File::read_rows_into", path_, untrusted_size_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  require_numeric(opened, where);
  int64_t row_size = 0;
  Handle file_space = select_rows(opened, first_row, row_count, row_size, where);
  if (static_cast<int64_t>(out.size()) != row_count * row_size)
    fail_argument(where, "output buffer holds " + std::to_string(out.size()) + " floats, but " +
                             std::to_string(row_count) + " rows of " + quoted(dataset_path) +
                             " need " + std::to_string(row_count * row_size));
  if (out.empty()) return;
  check_dataset_read(opened, row_count * row_size, 4, where);
  hsize_t memory_count = out.size();
  Handle memory_space(H5Screate_simple(1, &memory_count, nullptr), H5Sclose);
  read_as_float(opened, memory_space.get(), file_space.get(), out.data(), out.size(), where);
}

void H5File::write_rows(const std::string& dataset_path, int64_t first_row,
                        std::span<const float> values) {
  require_open("H5File::write_rows");
  LibraryLock lock;
  const Where where{"H5File::write_rows", path_};
  OpenDataset opened = open_dataset(file_id_, dataset_path, where);
  if (H5Tget_class(opened.type.get()) != H5T_FLOAT)
    fail(where, "dataset " + quoted(dataset_path) + " holds " + type_name(opened.type.get()) +
                    " values; write_rows writes float data only");
  if (opened.shape.empty())
    fail(where, "dataset " + quoted(dataset_path) + " is a scalar; it has no rows");
  int64_t row_size =
      element_count(std::vector<int64_t>(opened.shape.begin() + 1, opened.shape.end()));
  if (row_size == 0 || static_cast<int64_t>(values.size()) % row_size != 0)
    fail_argument(where, std::to_string(values.size()) + " values are not whole rows of " +
                             quoted(dataset_path) + " (shape " + shape_string(opened.shape) + ")");
  int64_t row_count = static_cast<int64_t>(values.size()) / row_size;
  Handle file_space = select_rows(opened, first_row, row_count, row_size, where);
  if (values.empty()) return;
  hsize_t memory_count = values.size();
  Handle memory_space(H5Screate_simple(1, &memory_count, nullptr), H5Sclose);
  if (is_ieee_half(opened.type.get())) {
    std::vector<uint16_t> half_bits(values.size());
    std::transform(values.begin(), values.end(), half_bits.begin(), float_to_half_bits);
    Handle memory_type = make_half_type(H5T_NATIVE_FLOAT);
    check(H5Dwrite(opened.dataset.get(), memory_type.get(), memory_space.get(), file_space.get(),
                   H5P_DEFAULT, half_bits.data()),
          where, "cannot write rows of " + quoted(dataset_path));
    return;
  }
  check(H5Dwrite(opened.dataset.get(), H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(),
                 H5P_DEFAULT, values.data()),
        where, "cannot write rows of " + quoted(dataset_path));
}

// ---------------------------------------------------------------------------------------------
// Attributes

namespace {

struct OpenAttribute {
  Handle attribute;
  Handle type;
  Handle space;
  int64_t count = 0;
  std::string description;  // "attribute 'name' of 'object'"
};

std::string attribute_description(const std::string& object_path, const std::string& name) {
  return "attribute " + quoted(name) + " of " + quoted(absolute_path(object_path));
}

OpenAttribute open_attribute(hid_t file, const std::string& object_path, const std::string& name,
                             const Where& where) {
  Handle object = open_object(file, object_path, where);
  OpenAttribute opened;
  opened.description = attribute_description(object_path, name);
  if (H5Aexists(object.get(), name.c_str()) <= 0) fail(where, "no " + opened.description);
  opened.attribute = checked(H5Aopen(object.get(), name.c_str(), H5P_DEFAULT), H5Aclose, where,
                             "cannot open " + opened.description);
  opened.type = checked(H5Aget_type(opened.attribute.get()), H5Tclose, where,
                        "cannot read the type of " + opened.description);
  opened.space = checked(H5Aget_space(opened.attribute.get()), H5Sclose, where,
                         "cannot read the shape of " + opened.description);
  if (H5Sget_simple_extent_type(opened.space.get()) != H5S_NULL) {
    try {
      opened.count = element_count(dataspace_shape(opened.space.get()));
    } catch (const std::exception& e) {
      fail(where, opened.description + ": " + e.what());
    }
  }
  // An attribute's values are stored in the file's own bytes (a variable-length string keeps at
  // least a 16-byte reference there), so a count beyond the file's size is a lie.
  const int64_t element_bytes = std::max<int64_t>(1, static_cast<int64_t>(H5Tget_size(opened.type.get())));
  if (where.untrusted_file_size >= 0 && opened.count > where.untrusted_file_size / element_bytes)
    fail(where, opened.description + " declares " + std::to_string(opened.count) + " values of " +
                    std::to_string(element_bytes) + " bytes, more than the file (" +
                    std::to_string(where.untrusted_file_size) + " bytes) can hold");
  if (opened.count > memory_limit_bytes() / std::max<int64_t>(40, element_bytes))
    fail(where, opened.description + " declares " + std::to_string(opened.count) +
                    " values, more than this machine's memory can hold");
  return opened;
}

void write_attribute(hid_t file, const std::string& object_path, const std::string& name,
                     hid_t type, const std::vector<int64_t>& shape, const void* value,
                     const Where& where) {
  Handle object = open_object(file, object_path, where);
  std::string description = attribute_description(object_path, name);
  if (H5Aexists(object.get(), name.c_str()) > 0)
    check(H5Adelete(object.get(), name.c_str()), where, "cannot replace " + description);
  Handle space = make_dataspace(shape);
  Handle attribute =
      checked(H5Acreate2(object.get(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose, where, "cannot create " + description);
  if (element_count(shape) > 0)
    check(H5Awrite(attribute.get(), type, value), where, "cannot write " + description);
}

std::vector<std::string> read_attribute_strings(const OpenAttribute& opened, const Where& where) {
  hid_t attribute = opened.attribute.get();
  return read_string_elements(
      opened.type.get(), opened.space.get(), opened.count,
      [attribute](hid_t memory_type, void* buffer) {
        return H5Aread(attribute, memory_type, buffer);
      },
      where, opened.description);
}

herr_t collect_attribute_name(hid_t, const char* name, const H5A_info_t*, void* client_data) {
  static_cast<std::vector<std::string>*>(client_data)->emplace_back(name);
  return 0;
}

}  // namespace

void H5File::set_string_attr(const std::string& object_path, const std::string& name,
                             const std::string& value) {
  require_open("H5File::set_string_attr");
  LibraryLock lock;
  Handle string_type = make_utf8_string_type();
  const char* pointer = value.c_str();
  write_attribute(file_id_, object_path, name, string_type.get(), {}, &pointer,
                  {"H5File::set_string_attr", path_});
}

void H5File::set_string_array_attr(const std::string& object_path, const std::string& name,
                                   const std::vector<std::string>& values) {
  require_open("H5File::set_string_array_attr");
  LibraryLock lock;
  Handle string_type = make_utf8_string_type();
  std::vector<const char*> pointers;
  for (const std::string& value : values) pointers.push_back(value.c_str());
  write_attribute(file_id_, object_path, name, string_type.get(),
                  {static_cast<int64_t>(values.size())}, pointers.data(),
                  {"H5File::set_string_array_attr", path_});
}

void H5File::set_int_attr(const std::string& object_path, const std::string& name, int64_t value) {
  require_open("H5File::set_int_attr");
  LibraryLock lock;
  write_attribute(file_id_, object_path, name, H5T_NATIVE_INT64, {}, &value,
                  {"H5File::set_int_attr", path_});
}

void H5File::set_double_attr(const std::string& object_path, const std::string& name,
                             double value) {
  require_open("H5File::set_double_attr");
  LibraryLock lock;
  write_attribute(file_id_, object_path, name, H5T_NATIVE_DOUBLE, {}, &value,
                  {"H5File::set_double_attr", path_});
}

bool H5File::has_attr(const std::string& object_path, const std::string& name) const {
  if (reader_) return reader_->call<bool>(H5Op::has_attr, object_path, name);
  require_open("H5File::has_attr");
  LibraryLock lock;
  const Where where{"H5File::has_attr", path_};
  if (!link_chain_exists(file_id_, object_path)) fail(where, "no object at " + quoted(object_path));
  Handle object = open_object(file_id_, object_path, where);
  htri_t exists = H5Aexists(object.get(), name.c_str());
  if (exists < 0) fail(where, "cannot look up " + attribute_description(object_path, name));
  return exists > 0;
}

std::vector<std::string> H5File::attr_names(const std::string& object_path) const {
  if (reader_) return reader_->call<std::vector<std::string>>(H5Op::attr_names, object_path);
  require_open("H5File::attr_names");
  LibraryLock lock;
  const Where where{"H5File::attr_names", path_};
  if (!link_chain_exists(file_id_, object_path)) fail(where, "no object at " + quoted(object_path));
  Handle object = open_object(file_id_, object_path, where);
  std::vector<std::string> names;
  hsize_t position = 0;
  check(H5Aiterate2(object.get(), H5_INDEX_NAME, H5_ITER_INC, &position, collect_attribute_name,
                    &names),
        where, "cannot list the attributes of " + quoted(object_path));
  return names;
}

std::string H5File::read_string_attr(const std::string& object_path,
                                     const std::string& name) const {
  if (reader_) return reader_->call<std::string>(H5Op::read_string_attr, object_path, name);
  require_open("H5File::read_string_attr");
  LibraryLock lock;
  const Where where{"H5File::read_string_attr", path_, untrusted_size_};
  OpenAttribute opened = open_attribute(file_id_, object_path, name, where);
  if (H5Tget_class(opened.type.get()) != H5T_STRING)
    fail(where, opened.description + " holds " + type_name(opened.type.get()) + ", not a string");
  if (opened.count != 1)
    fail(where,
         opened.description + " holds " + std::to_string(opened.count) + " strings, expected one");
  return read_attribute_strings(opened, where).front();
}

std::vector<std::string> H5File::read_string_array_attr(const std::string& object_path,
                                                        const std::string& name) const {
  if (reader_) return reader_->call<std::vector<std::string>>(H5Op::read_string_array_attr, object_path, name);
  require_open("H5File::read_string_array_attr");
  LibraryLock lock;
  const Where where{"H5File::read_string_array_attr", path_, untrusted_size_};
  OpenAttribute opened = open_attribute(file_id_, object_path, name, where);
  if (opened.count == 0) return {};
  if (H5Tget_class(opened.type.get()) != H5T_STRING)
    fail(where,
         opened.description + " holds " + type_name(opened.type.get()) + " values, not strings");
  if (H5Sget_simple_extent_ndims(opened.space.get()) > 1)
    fail(where, opened.description + " is a multi-dimensional array; expected a list of strings");
  return read_attribute_strings(opened, where);
}

int64_t H5File::read_int_attr(const std::string& object_path, const std::string& name) const {
  if (reader_) return reader_->call<int64_t>(H5Op::read_int_attr, object_path, name);
  require_open("H5File::read_int_attr");
  LibraryLock lock;
  const Where where{"H5File::read_int_attr", path_, untrusted_size_};
  OpenAttribute opened = open_attribute(file_id_, object_path, name, where);
  if (H5Tget_class(opened.type.get()) != H5T_INTEGER)
    fail(where, opened.description + " holds " + type_name(opened.type.get()) + ", not an integer");
  if (opened.count != 1)
    fail(where,
         opened.description + " holds " + std::to_string(opened.count) + " values, expected one");
  int64_t value = 0;
  check(H5Aread(opened.attribute.get(), H5T_NATIVE_INT64, &value), where,
        "cannot read " + opened.description);
  return value;
}

double H5File::read_double_attr(const std::string& object_path, const std::string& name) const {
  if (reader_) return reader_->call<double>(H5Op::read_double_attr, object_path, name);
  require_open("H5File::read_double_attr");
  LibraryLock lock;
  const Where where{"H5File::read_double_attr", path_, untrusted_size_};
  OpenAttribute opened = open_attribute(file_id_, object_path, name, where);
  H5T_class_t type_class = H5Tget_class(opened.type.get());
  if (type_class != H5T_FLOAT && type_class != H5T_INTEGER)
    fail(where, opened.description + " holds " + type_name(opened.type.get()) + ", not a number");
  if (opened.count != 1)
    fail(where,
         opened.description + " holds " + std::to_string(opened.count) + " values, expected one");
  double value = 0;
  check(H5Aread(opened.attribute.get(), H5T_NATIVE_DOUBLE, &value), where,
        "cannot read " + opened.description);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Atomic replacement

void write_file_atomically(const std::string& final_path,
                           const std::function<void(H5File&)>& fill) {
  namespace fs = std::filesystem;
  remove_stale_temporaries(final_path);  // left by a process killed while saving
  const std::string temp_path = temporary_path_for(final_path);
  try {
    {
      H5File file = H5File::create(temp_path);
      fill(file);
      file.close();
    }
    // A durable commit (io/atomic_file.h) in its two halves, with the fault points of the
    // kill tests between them: the bytes reach the disk before the rename shows them under the
    // final name, or a crash could leave a complete-looking empty file.
    fsync_file(temp_path, "write_file_atomically");
    fault_point("checkpoint-written");
    commit_temporary_file(temp_path, final_path, "write_file_atomically", FileSync::Fast);
    fault_point("checkpoint-renamed");
  } catch (const std::runtime_error& e) {
    std::error_code ignored;
    fs::remove(temp_path, ignored);
    // A full disk surfaces as HDF5's long error stack: say first what a user needs to know.
    const std::string what = e.what();
    for (const char* cause : {"No space left on device", "Disk quota exceeded"})
      if (what.find(cause) != std::string::npos)
        throw std::runtime_error(final_path + " was not saved (" + cause + "); " +
                                 (fs::exists(final_path) ? "the previous file is unchanged"
                                                         : "no file was written") +
                                 ". Details: " + what);
    throw;
  } catch (...) {
    std::error_code ignored;
    fs::remove(temp_path, ignored);
    throw;
  }
  fsync_directory_of(final_path, "write_file_atomically");
}

}  // namespace glimpse
