// Tests of io/hdf5: reading what h5py/numpy wrote (tests/golden/gen_hdf5_reference_file.py), the
// float16 conversion against numpy's, round trips of every dtype and attribute kind, row-range
// reads and writes, shape/type/range errors, broken files (tests/data/bad_h5, made by
// tests/golden/gen_keras_weight_files.py) and the atomic file replacement.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "io/atomic_file.h"
#include "io/hdf5.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace {

const std::string kReference = std::string(GLIMPSE_TEST_DATA) + "/data/hdf5/h5py_reference.h5";
const std::string kBadFiles = std::string(GLIMPSE_TEST_DATA) + "/data/bad_h5";

// A fresh directory for files a test writes, removed afterwards.
struct ScratchDirectory {
  fs::path path;
  explicit ScratchDirectory(const std::string& name)
      : path(fs::temp_directory_path() /
             ("glimpse_test_hdf5_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// The message of the exception `action` throws (failing the test if it throws none).
template <typename Exception = std::exception, typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const Exception& error) {
    return error.what();
  }
  FAIL("expected an exception");
  return "";
}

bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

// Floats equal bit for bit, or both NaN.
void check_floats_identical(const std::vector<float>& actual, const std::vector<float>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i])) {
      CHECK_MESSAGE(std::isnan(actual[i]), "index " << i);
    } else {
      CHECK_MESSAGE(same_bits(actual[i], expected[i]),
                    "index " << i << ": " << actual[i] << " vs " << expected[i]);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// float16

TEST_CASE("float_to_half_bits rounds exactly like numpy's astype(float16)") {
  H5File file = H5File::open_read(kReference);
  std::vector<float> inputs = file.read("half_rounding/input").data;
  std::vector<int64_t> expected_bits =
      file.read_int64("half_rounding/expected_bits", {static_cast<int64_t>(inputs.size())});
  REQUIRE(inputs.size() > 600);
  int mismatches = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    uint16_t bits = float_to_half_bits(inputs[i]);
    if (std::isnan(inputs[i])) {
      CHECK((bits & 0x7c00) == 0x7c00);
      CHECK((bits & 0x03ff) != 0);
      continue;
    }
    if (bits != expected_bits[i] && ++mismatches < 10)
      FAIL_CHECK("input " << inputs[i] << " (index " << i << "): got 0x" << std::hex << bits
                          << ", numpy 0x" << expected_bits[i]);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("half_bits_to_float matches numpy and every half survives a round trip") {
  H5File file = H5File::open_read(kReference);
  std::vector<int64_t> bits =
      file.read_int64("half_rounding/expected_bits", file.shape("half_rounding/expected_bits"));
  std::vector<float> numpy_back = file.read("half_rounding/expected_back").data;
  std::vector<float> ours;
  for (int64_t b : bits) ours.push_back(half_bits_to_float(static_cast<uint16_t>(b)));
  check_floats_identical(ours, numpy_back);

  for (uint32_t b = 0; b < 65536; ++b) {
    float value = half_bits_to_float(static_cast<uint16_t>(b));
    if (std::isnan(value)) continue;
    REQUIRE_MESSAGE(float_to_half_bits(value) == b, "half bits 0x" << std::hex << b);
  }
  CHECK(half_bits_to_float(0x3c00) == 1.0f);
  CHECK(half_bits_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(std::isinf(half_bits_to_float(0xfc00)));
}

// ---------------------------------------------------------------------------------------------
// Reading what h5py wrote

TEST_CASE("reads h5py float16, float32, float64 datasets (both byte orders)") {
  H5File file = H5File::open_read(kReference);
  CHECK(file.dtype_name("float16/values") == "float16");
  CHECK(file.dtype_name("float16/big_endian") == "float16");
  std::vector<float> numpy_halves = file.read("float16/as_float32").data;
  check_floats_identical(file.read("float16/values").data, numpy_halves);
  check_floats_identical(file.read("float16/big_endian").data, numpy_halves);
  std::vector<double> as_double = file.read_double("float16/values", {13});
  CHECK(as_double[3] == -2.5);

  std::vector<float> matrix;
  for (int i = 0; i < 12; ++i) matrix.push_back(0.25f * static_cast<float>(i) - 1.0f);
  CHECK(file.dtype_name("float32/matrix") == "float32");
  CHECK(file.read_float("float32/matrix", {3, 4}) == matrix);
  CHECK(file.read_float("float32/big_endian", {3, 4}) == matrix);
  ArrayData array = file.read("float32/matrix");
  CHECK(array.shape == std::vector<int64_t>{3, 4});
  CHECK(array.data == matrix);

  CHECK(file.dtype_name("float64/values") == "float64");
  check_floats_identical(file.read("float64/values").data, file.read("float64/as_float32").data);
  std::vector<double> doubles = file.read_double("float64/values", {7});
  CHECK(doubles[0] == 0.1);
  CHECK(doubles[1] == 1.0 / 3.0);
  CHECK(doubles[4] == 1e300);

  std::vector<double> pi = file.read_double("scalar/pi", {});
  REQUIRE(pi.size() == 1);
  CHECK(pi[0] == std::numbers::pi);
  ArrayData empty = file.read("empty/rows");
  CHECK(empty.shape == std::vector<int64_t>{0, 3});
  CHECK(empty.data.empty());
}

TEST_CASE("reads every h5py integer type, with range checks when narrowing") {
  H5File file = H5File::open_read(kReference);
  CHECK(file.read_int64("int8/bounds", {4}) == std::vector<int64_t>{-128, -1, 0, 127});
  CHECK(file.read_int64("int16/bounds", {4}) == std::vector<int64_t>{-32768, -1, 0, 32767});
  CHECK(file.read_int64("int32/bounds", {4}) ==
        std::vector<int64_t>{std::numeric_limits<int32_t>::min(), -1, 0,
                             std::numeric_limits<int32_t>::max()});
  CHECK(file.read_int64("int64/bounds", {4}) ==
        std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -1, 0,
                             std::numeric_limits<int64_t>::max()});
  CHECK(file.read_int64("uint8/bounds", {4}) == std::vector<int64_t>{0, 1, 0, 255});
  CHECK(file.read_int64("uint16/bounds", {4}) == std::vector<int64_t>{0, 1, 0, 65535});
  CHECK(file.read_int64("uint32/bounds", {4}) == std::vector<int64_t>{0, 1, 0, 4294967295});
  CHECK(file.dtype_name("uint64/bounds") == "uint64");
  CHECK(file.dtype_name("int16/bounds") == "int16");

  CHECK(file.read_int32("int16/bounds", {4}) == std::vector<int32_t>{-32768, -1, 0, 32767});
  CHECK(file.read_uint8("uint8/bounds", {4}) == std::vector<uint8_t>{0, 1, 0, 255});
  CHECK(file.read("int8/bounds").data == std::vector<float>{-128, -1, 0, 127});

  std::string message = error_message([&] { file.read_int32("int64/too_big_for_int32", {2}); });
  CHECK(message.find("2147483648") != std::string::npos);
  CHECK(message.find("int32") != std::string::npos);
  CHECK(message.find("int64/too_big_for_int32") != std::string::npos);
  CHECK(error_message([&] { file.read_uint8("int32/negative", {2}); }).find("-1") !=
        std::string::npos);
  CHECK(error_message([&] {
          file.read_int64("uint64/bounds", {4});
        }).find("18446744073709551615") != std::string::npos);
  CHECK(error_message([&] {
          file.read_int64("uint64/too_big_for_int64", {2});
        }).find("does not fit in int64") != std::string::npos);
}

TEST_CASE("reads h5py string datasets, compressed data and reports non-numeric data") {
  H5File file = H5File::open_read(kReference);
  CHECK(file.read_strings("strings/fixed") == std::vector<std::string>{"alpha", "be", ""});
  CHECK(file.read_strings("strings/vlen_utf8") ==
        std::vector<std::string>{"na\xc3\xafve", "caf\xc3\xa9 \xe2\x9c\x93", ""});
  CHECK(file.read_strings("strings/scalar_vlen") == std::vector<std::string>{"just one"});
  CHECK(file.dtype_name("strings/fixed") == "string");

  std::vector<float> compressed = file.read_float("compressed/gzip_shuffle", {200, 7});
  for (size_t i = 0; i < compressed.size(); ++i)
    REQUIRE(compressed[i] == 0.5f * static_cast<float>(i));
  std::vector<float> compressed_half = file.read_float("compressed/gzip_float16", {50, 4});
  for (size_t i = 0; i < compressed_half.size(); ++i)
    REQUIRE(compressed_half[i] == static_cast<float>(i % 97) * 0.125f);

  std::string message = error_message([&] { file.read("strings/fixed"); });
  CHECK(message.find("holds string values, not numbers") != std::string::npos);
  CHECK(message.find(kReference) != std::string::npos);
  CHECK(error_message([&] { file.read("bool/flags"); }).find("enum") != std::string::npos);
  CHECK(error_message([&] {
          file.read_int64("float32/matrix", {3, 4});
        }).find("not integers") != std::string::npos);
  CHECK(error_message([&] { file.read_strings("float32/matrix"); }).find("not strings") !=
        std::string::npos);
  CHECK(error_message([&] { file.read("no/such/dataset"); }).find("no dataset 'no/such/dataset'") !=
        std::string::npos);
  CHECK(error_message([&] { file.read("attrs"); }).find("is not a dataset") != std::string::npos);
}

TEST_CASE("a typed read names both shapes when they differ") {
  H5File file = H5File::open_read(kReference);
  std::string message = error_message([&] { file.read_float("float32/matrix", {4, 3}); });
  CHECK(message.find("H5File::read_float") != std::string::npos);
  CHECK(message.find("'float32/matrix' has shape (3, 4), expected (4, 3)") != std::string::npos);
  CHECK(error_message([&] {
          file.read_double("scalar/pi", {1});
        }).find("shape (), expected (1,)") != std::string::npos);
  CHECK_THROWS_AS(file.read_int64("int8/bounds", {}), std::runtime_error);
  CHECK_THROWS_AS(file.read_uint8("uint8/bounds", {2, 2}), std::runtime_error);
}

TEST_CASE("reads every flavour of h5py string attribute, and numeric attributes") {
  H5File file = H5File::open_read(kReference);
  CHECK(file.read_string_attr("/", "created_by") == "h5py");
  CHECK(file.read_string_attr("float32/matrix", "units") == "metres");
  CHECK(file.read_string_attr("attrs", "fixed_nullpad") == "fixed value");
  CHECK(file.read_string_attr("attrs", "fixed_nullterm") == "null terminated");
  CHECK(file.read_string_attr("attrs", "fixed_spacepad") == "space padded");
  CHECK(file.read_string_attr("attrs", "fixed_utf8") ==
        "Gr\xc3\xbc\xc3\x9f"
        "e");
  CHECK(file.read_string_attr("attrs", "vlen_ascii") == "vlen ascii");
  CHECK(file.read_string_attr("attrs", "vlen_utf8") == "na\xc3\xafve caf\xc3\xa9 \xe2\x9c\x93");
  CHECK(file.read_string_attr("attrs", "one_element_array") == "lonely");

  CHECK(file.read_string_array_attr("attrs", "fixed_array") ==
        std::vector<std::string>{"one", "three", ""});
  CHECK(file.read_string_array_attr("attrs", "vlen_array") ==
        std::vector<std::string>{"\xce\xb1", "\xce\xb2 \xce\xb3", ""});
  CHECK(file.read_string_array_attr("attrs", "vlen_ascii_array") ==
        std::vector<std::string>{"x", "yy"});
  CHECK(file.read_string_array_attr("attrs", "vlen_utf8") ==
        std::vector<std::string>{"na\xc3\xafve caf\xc3\xa9 \xe2\x9c\x93"});
  CHECK(file.read_string_array_attr("attrs", "empty_float_array").empty());

  CHECK(file.read_int_attr("attrs", "int64") == 1234567890123456789);
  CHECK(file.read_int_attr("attrs", "int32") == -7);
  CHECK(file.read_int_attr("attrs", "uint8") == 200);
  CHECK(file.read_double_attr("attrs", "double") == 0.1);
  CHECK(file.read_double_attr("attrs", "float32") == static_cast<double>(0.1f));
  CHECK(file.read_double_attr("attrs", "int32") == -7.0);

  CHECK(file.has_attr("attrs", "int64"));
  CHECK_FALSE(file.has_attr("attrs", "missing"));
  std::vector<std::string> names = file.attr_names("attrs");
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(names.size() == 18);

  CHECK(error_message([&] {
          file.read_string_attr("attrs", "fixed_array");
        }).find("holds 3 strings, expected one") != std::string::npos);
  CHECK(error_message([&] { file.read_string_attr("attrs", "int64"); }).find("not a string") !=
        std::string::npos);
  CHECK(error_message([&] {
          file.read_string_array_attr("attrs", "matrix_strings");
        }).find("multi-dimensional") != std::string::npos);
  CHECK(error_message([&] { file.read_int_attr("attrs", "double"); }).find("not an integer") !=
        std::string::npos);
  CHECK(error_message([&] {
          file.read_int_attr("attrs", "int_array");
        }).find("holds 3 values, expected one") != std::string::npos);
  std::string missing = error_message([&] { file.read_string_attr("attrs", "nope"); });
  CHECK(missing.find("no attribute 'nope' of '/attrs'") != std::string::npos);
  CHECK(error_message([&] { file.has_attr("no/group", "x"); }).find("no object at 'no/group'") !=
        std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_CASE("every dtype round-trips through a file we write") {
  ScratchDirectory scratch("dtypes");
  const std::string path = scratch.file("round_trip.h5");
  const std::vector<float> floats = {1.5f, -0.0f, 3.4e38f, -1e-40f, 7.0f, 0.1f};
  const std::vector<double> doubles = {0.1, -1e300, 5e-324, 2.0};
  const std::vector<int32_t> int32s = {std::numeric_limits<int32_t>::min(), -1, 0,
                                       std::numeric_limits<int32_t>::max()};
  const std::vector<int64_t> int64s = {std::numeric_limits<int64_t>::min(), 42,
                                       std::numeric_limits<int64_t>::max()};
  const std::vector<uint8_t> bytes = {0, 1, 128, 255};
  {
    H5File file = H5File::create(path);
    file.write("a/b/floats", {2, 3}, floats);
    file.write("doubles", {4}, doubles);
    file.write("ints/int32", {2, 2}, int32s);
    file.write("ints/int64", {3}, int64s);
    file.write("bytes", {4, 1}, bytes);
    file.write_float16("half", {6}, floats);
    file.write("scalar", {}, std::vector<float>{2.5f});
    file.write("empty", {0, 4}, std::vector<float>{});
    file.write_strings("vocab", {"<pad>", "\xc3\xa9t\xc3\xa9", ""});
    file.close();
    file.close();  // a second close does nothing
  }
  H5File file = H5File::open_read(path);
  CHECK(file.dtype_name("a/b/floats") == "float32");
  CHECK(file.dtype_name("doubles") == "float64");
  CHECK(file.dtype_name("ints/int32") == "int32");
  CHECK(file.dtype_name("ints/int64") == "int64");
  CHECK(file.dtype_name("bytes") == "uint8");
  CHECK(file.dtype_name("half") == "float16");
  check_floats_identical(file.read_float("a/b/floats", {2, 3}), floats);
  CHECK(file.read_double("doubles", {4}) == doubles);
  CHECK(file.read_int32("ints/int32", {2, 2}) == int32s);
  CHECK(file.read_int64("ints/int64", {3}) == int64s);
  CHECK(file.read_uint8("bytes", {4, 1}) == bytes);
  CHECK(file.read_float("scalar", {}) == std::vector<float>{2.5f});
  CHECK(file.read("empty").shape == std::vector<int64_t>{0, 4});
  CHECK(file.read_strings("vocab") == std::vector<std::string>{"<pad>", "\xc3\xa9t\xc3\xa9", ""});

  // Half precision: 1.5 and -0 and 7 are exact, 3.4e38 overflows, -1e-40 underflows to -0,
  // 0.1 rounds to the nearest half (0x2e66 = 0.0999755859375).
  std::vector<float> halves = file.read_float("half", {6});
  CHECK(halves[0] == 1.5f);
  CHECK(same_bits(halves[1], -0.0f));
  CHECK(std::isinf(halves[2]));
  CHECK(same_bits(halves[3], -0.0f));
  CHECK(halves[4] == 7.0f);
  CHECK(halves[5] == 0.0999755859375f);
}

TEST_CASE("float16 written by us equals numpy's float16 of the same inputs") {
  ScratchDirectory scratch("half");
  H5File reference = H5File::open_read(kReference);
  std::vector<float> inputs = reference.read("half_rounding/input").data;
  std::vector<float> numpy_back = reference.read("half_rounding/expected_back").data;
  const std::string path = scratch.file("half.h5");
  {
    H5File file = H5File::create(path);
    file.write_float16("x", {static_cast<int64_t>(inputs.size())}, inputs, {.gzip_level = 6});
  }
  check_floats_identical(H5File::open_read(path).read("x").data, numpy_back);
}

TEST_CASE("attributes of every kind round-trip, on the root, groups and datasets") {
  ScratchDirectory scratch("attrs");
  const std::string path = scratch.file("attrs.h5");
  std::vector<std::string> many_names;  // > 64 KiB: needs HDF5's dense attribute storage
  for (int i = 0; i < 3000; ++i)
    many_names.push_back("layer_with_a_longish_name_" + std::to_string(i));
  {
    H5File file = H5File::create(path);
    file.write("group/data", {1}, std::vector<float>{1.0f});
    file.set_string_attr("/", "format", "glimpse checkpoint");
    file.set_string_attr("group", "utf8", "\xce\xbb \xe2\x86\x92 \xe2\x88\x9e");
    file.set_string_attr("group", "empty", "");
    file.set_string_array_attr("group/data", "names", {"a", "", "c c"});
    file.set_string_array_attr("group/data", "no_names", {});
    file.set_string_array_attr("/", "many_names", many_names);
    file.set_int_attr("/", "step", std::numeric_limits<int64_t>::min());
    file.set_int_attr("group", "epoch", 7);
    file.set_double_attr("group/data", "scale", -0.0);
    file.set_double_attr("/", "tiny", 5e-324);
    file.set_int_attr("group", "epoch", 8);  // replaces
    file.set_string_attr("/", "format", "glimpse checkpoint v2");
  }
  H5File file = H5File::open_read(path);
  CHECK(file.read_string_attr("/", "format") == "glimpse checkpoint v2");
  CHECK(file.read_string_attr("group", "utf8") == "\xce\xbb \xe2\x86\x92 \xe2\x88\x9e");
  CHECK(file.read_string_attr("group", "empty").empty());
  CHECK(file.read_string_array_attr("group/data", "names") ==
        std::vector<std::string>{"a", "", "c c"});
  CHECK(file.read_string_array_attr("group/data", "no_names").empty());
  CHECK(file.read_string_array_attr("/", "many_names") == many_names);
  CHECK(file.read_int_attr("/", "step") == std::numeric_limits<int64_t>::min());
  CHECK(file.read_int_attr("group", "epoch") == 8);
  double scale = file.read_double_attr("group/data", "scale");
  CHECK((scale == 0.0 && std::signbit(scale)));
  CHECK(file.read_double_attr("/", "tiny") == 5e-324);
  CHECK(file.attr_names("group") == std::vector<std::string>{"empty", "epoch", "utf8"});
  CHECK(file.attr_names("/") == std::vector<std::string>{"format", "many_names", "step", "tiny"});
}

TEST_CASE("groups: creation, listing, existence, removal, and no silent overwrite") {
  ScratchDirectory scratch("groups");
  H5File file = H5File::create(scratch.file("groups.h5"));
  file.create_group("model/encoder");
  file.create_group("model/encoder");  // already there: fine
  file.write("model/decoder/gru/kernel", {2}, std::vector<float>{1, 2});
  file.write("model/b_dataset", {1}, std::vector<int64_t>{3});

  CHECK(file.exists("/"));
  CHECK(file.exists("model"));
  CHECK(file.exists("/model/decoder/gru/kernel"));
  CHECK_FALSE(file.exists("model/nothing"));
  CHECK_FALSE(file.exists("model/b_dataset/below_a_dataset"));
  CHECK(file.is_group("model/decoder"));
  CHECK_FALSE(file.is_group("model/b_dataset"));
  CHECK(file.is_dataset("model/b_dataset"));
  CHECK_FALSE(file.is_dataset("model"));
  CHECK_FALSE(file.is_dataset("missing"));

  std::vector<H5Child> children = file.list("model");
  REQUIRE(children.size() == 3);
  CHECK(children[0].name == "b_dataset");
  CHECK(children[0].kind == H5ObjectKind::dataset);
  CHECK(children[1].name == "decoder");
  CHECK(children[1].kind == H5ObjectKind::group);
  CHECK(children[2].name == "encoder");
  CHECK(file.list("/").size() == 1);

  std::string message =
      error_message([&] { file.write("model/b_dataset", {1}, std::vector<int64_t>{4}); });
  CHECK(message.find("already exists") != std::string::npos);
  CHECK(error_message([&] { file.create_group("model/b_dataset"); }).find("not a group") !=
        std::string::npos);
  CHECK(error_message([&] { file.list("model/b_dataset"); }).find("is not a group") !=
        std::string::npos);
  CHECK(error_message([&] { file.list("nowhere"); }).find("no group at 'nowhere'") !=
        std::string::npos);

  file.remove("model/b_dataset");
  CHECK_FALSE(file.exists("model/b_dataset"));
  file.write("model/b_dataset", {1}, std::vector<int64_t>{4});  // the name is free again
  CHECK(file.read_int64("model/b_dataset", {1}) == std::vector<int64_t>{4});
  CHECK_THROWS_AS(file.remove("model/gone"), std::runtime_error);
}

TEST_CASE("write checks its arguments") {
  ScratchDirectory scratch("arguments");
  H5File file = H5File::create(scratch.file("arguments.h5"));
  std::vector<float> six(6, 1.0f);
  CHECK(error_message<std::invalid_argument>([&] {
          file.write("x", {2, 2}, six);
        }).find("needs 4 values, got 6") != std::string::npos);
  CHECK_THROWS_AS(file.write("x", {-1, 2}, six), std::invalid_argument);
  CHECK_THROWS_AS(file.write("x", {6}, six, {.gzip_level = 10}), std::invalid_argument);
  CHECK_THROWS_AS(file.write("x", {6}, six, {.chunk_shape = {7}}), std::invalid_argument);
  CHECK_THROWS_AS(file.write("x", {6}, six, {.chunk_shape = {2, 3}}), std::invalid_argument);
  CHECK_FALSE(file.exists("x"));
  file.write("x", {6}, six, {.chunk_shape = {6}});
  CHECK(file.read_float("x", {6}) == six);
}

TEST_CASE("gzip makes compressible data smaller and reads back identically") {
  ScratchDirectory scratch("gzip");
  std::vector<float> values(256 * 1024);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 16);
  {
    H5File plain = H5File::create(scratch.file("plain.h5"));
    plain.write("x", {256, 1024}, values);
    H5File packed = H5File::create(scratch.file("packed.h5"));
    packed.write("x", {256, 1024}, values, {.gzip_level = 4});
  }
  CHECK(fs::file_size(scratch.file("packed.h5")) * 20 < fs::file_size(scratch.file("plain.h5")));
  CHECK(H5File::open_read(scratch.file("packed.h5")).read_float("x", {256, 1024}) == values);
}

// ---------------------------------------------------------------------------------------------
// Row ranges (feature caches)

TEST_CASE("read_rows reads a row range of 2-D and 3-D datasets in every storage") {
  ScratchDirectory scratch("rows");
  const std::string path = scratch.file("rows.h5");
  // features[r][p][c] = 100 r + 10 p + c: exact in float16 for the values used here.
  std::vector<float> features;
  for (int r = 0; r < 9; ++r)
    for (int p = 0; p < 3; ++p)
      for (int c = 0; c < 4; ++c) features.push_back(static_cast<float>(100 * r + 10 * p + c));
  {
    H5File file = H5File::create(path);
    file.write("plain", {9, 3, 4}, features);
    file.write("chunked", {9, 3, 4}, features, {.gzip_level = 1, .chunk_shape = {2, 3, 4}});
    file.write_float16("half", {9, 3, 4}, features);
    file.write("flat", {9, 12}, features);
  }
  H5File file = H5File::open_read(path);
  auto expected_rows = [&](int first, int count) {
    return std::vector<float>(features.begin() + first * 12,
                              features.begin() + (first + count) * 12);
  };
  for (const char* name : {"plain", "chunked", "half"}) {
    CAPTURE(name);
    ArrayData rows = file.read_rows(name, 3, 4);
    CHECK(rows.shape == std::vector<int64_t>{4, 3, 4});
    CHECK(rows.data == expected_rows(3, 4));
    CHECK(file.read_rows(name, 8, 1).data == expected_rows(8, 1));
    CHECK(file.read_rows(name, 0, 9).data == features);
    ArrayData none = file.read_rows(name, 9, 0);
    CHECK(none.shape == std::vector<int64_t>{0, 3, 4});
    CHECK(none.data.empty());
  }
  CHECK(file.read_rows("flat", 2, 2).shape == std::vector<int64_t>{2, 12});
  CHECK(file.read_rows("flat", 2, 2).data == expected_rows(2, 2));

  std::vector<float> buffer(2 * 12);
  file.read_rows_into("chunked", 5, 2, buffer);
  CHECK(buffer == expected_rows(5, 2));
  CHECK_THROWS_AS(file.read_rows_into("chunked", 5, 3, buffer), std::invalid_argument);

  std::string message =
      error_message<std::invalid_argument>([&] { file.read_rows("plain", 7, 3); });
  CHECK(message.find("rows [7, 10) are outside dataset 'plain' of shape (9, 3, 4)") !=
        std::string::npos);
  CHECK_THROWS_AS(file.read_rows("plain", -1, 1), std::invalid_argument);
}

TEST_CASE("read_rows on h5py datasets: gzip-compressed, float16 and integers") {
  H5File file = H5File::open_read(kReference);
  ArrayData rows = file.read_rows("compressed/gzip_shuffle", 15, 3);  // crosses a chunk boundary
  REQUIRE(rows.shape == std::vector<int64_t>{3, 7});
  for (size_t i = 0; i < rows.data.size(); ++i)
    CHECK(rows.data[i] == 0.5f * static_cast<float>(15 * 7 + i));
  ArrayData half_rows = file.read_rows("compressed/gzip_float16", 47, 3);
  for (size_t i = 0; i < half_rows.data.size(); ++i)
    CHECK(half_rows.data[i] == static_cast<float>((47 * 4 + i) % 97) * 0.125f);
  CHECK(file.read_rows("rows/int16", 4, 2).data == std::vector<float>{40, 41, 50, 51});
  CHECK(error_message([&] { file.read_rows("scalar/pi", 0, 1); }).find("scalar") !=
        std::string::npos);
}

TEST_CASE("create_dataset + write_rows fill a dataset batch by batch") {
  ScratchDirectory scratch("fill");
  const std::string path = scratch.file("cache.h5");
  for (H5DType storage : {H5DType::float32, H5DType::float16, H5DType::float64}) {
    const std::string name = storage == H5DType::float32   ? "f32"
                             : storage == H5DType::float16 ? "f16"
                                                           : "f64";
    CAPTURE(name);
    {
      H5File file = fs::exists(path) ? H5File::open_read_write(path) : H5File::create(path);
      file.create_dataset(name, {5, 2, 3}, storage, {.gzip_level = 1, .chunk_shape = {1, 2, 3}});
      std::vector<float> batch(12), last(6);
      for (int i = 0; i < 12; ++i) batch[i] = static_cast<float>(i) + 0.5f;
      for (int i = 0; i < 6; ++i) last[i] = -static_cast<float>(i);
      file.write_rows(name, 1, batch);  // rows 1 and 2
      file.write_rows(name, 4, last);   // row 4; rows 0 and 3 stay zero
      CHECK_THROWS_AS(file.write_rows(name, 4, batch), std::invalid_argument);
      CHECK_THROWS_AS(file.write_rows(name, 0, std::vector<float>(5)), std::invalid_argument);
    }
    H5File file = H5File::open_read(path);
    std::vector<float> all = file.read_float(name, {5, 2, 3});
    for (int i = 0; i < 6; ++i) CHECK(all[i] == 0.0f);
    for (int i = 0; i < 12; ++i) CHECK(all[6 + i] == static_cast<float>(i) + 0.5f);
    for (int i = 0; i < 6; ++i) CHECK(all[18 + i] == 0.0f);
    for (int i = 0; i < 6; ++i) CHECK(all[24 + i] == -static_cast<float>(i));
  }
  H5File file = H5File::open_read_write(path);
  file.create_dataset("ids", {3}, H5DType::int64);
  CHECK(error_message([&] {
          file.write_rows("ids", 0, std::vector<float>{1});
        }).find("float data only") != std::string::npos);
  CHECK(file.read_int64("ids", {3}) == std::vector<int64_t>{0, 0, 0});
}

TEST_CASE("several threads may read the same file at once") {
  ScratchDirectory scratch("threads");
  const std::string path = scratch.file("shared.h5");
  std::vector<float> values(64 * 10);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  H5File::create(path).write("x", {64, 10}, values);
  H5File file = H5File::open_read(path);
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int repeat = 0; repeat < 50; ++repeat) {
        int first = (t * 13 + repeat * 7) % 60;
        ArrayData rows = file.read_rows("x", first, 4);
        for (size_t i = 0; i < rows.data.size(); ++i)
          if (rows.data[i] != static_cast<float>(first * 10 + static_cast<int>(i))) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(failures == std::vector<int>(4, 0));
}

// ---------------------------------------------------------------------------------------------
// Opening files

TEST_CASE("opening missing, non-HDF5, empty, truncated files and directories fails clearly") {
  auto open_error = [](const std::string& path) {
    return error_message<std::runtime_error>([&] { H5File::open_read(path); });
  };
  const std::string missing = kBadFiles + "/does_not_exist.h5";
  std::string message = open_error(missing);
  CHECK(message == "H5File::open_read: " + missing + ": no such file");

  message = open_error(kBadFiles + "/not_hdf5.h5");
  CHECK(message.find(kBadFiles + "/not_hdf5.h5") != std::string::npos);
  CHECK(message.find("not an HDF5 file") != std::string::npos);

  CHECK(open_error(kBadFiles + "/empty.h5").find("not an HDF5 file (the file is empty)") !=
        std::string::npos);

  message = open_error(kBadFiles + "/truncated.h5");
  CHECK(message.find(kBadFiles + "/truncated.h5") != std::string::npos);
  CHECK(message.find(": truncated HDF5 file (HDF5: ") != std::string::npos);
  CHECK(message.find("truncated file: eof = ") != std::string::npos);  // HDF5's own diagnosis

  CHECK(open_error(kBadFiles).find("is a directory") != std::string::npos);
  CHECK(error_message([&] { H5File::open_read_write(missing); }).find("H5File::open_read_write") !=
        std::string::npos);
  CHECK(error_message([&] {
          H5File::create("/nonexistent_dir_glimpse/x.h5");
        }).find("directory '/nonexistent_dir_glimpse' does not exist") != std::string::npos);
}

TEST_CASE("damaged bytes inside a file give errors, not crashes") {
  ScratchDirectory scratch("corrupt");
  auto damaged_copy = [&](const std::string& name, std::streamoff offset, size_t count) {
    const std::string path = scratch.file(name);
    fs::copy_file(kReference, path);
    std::fstream stream(path, std::ios::in | std::ios::out | std::ios::binary);
    stream.seekp(offset);
    for (size_t i = 0; i < count; ++i) stream.put(static_cast<char>(0xA5));
    return path;
  };
  // The superblock (checksummed in this file's format): opening fails.
  const std::string bad_superblock = damaged_copy("superblock.h5", 20, 8);
  std::string message = error_message([&] { H5File::open_read(bad_superblock); });
  CHECK(message.find(bad_superblock) != std::string::npos);
  CHECK(message.find("cannot open the HDF5 file") != std::string::npos);

  // Everything after the first 4 KiB: opening may work, using the file must fail cleanly.
  const std::string bad_body =
      damaged_copy("body.h5", 4096, static_cast<size_t>(fs::file_size(kReference)) - 4096);
  CHECK_THROWS_AS(
      {
        H5File file = H5File::open_read(bad_body);
        for (const char* name : {"float32/matrix", "half_rounding/input", "strings/vlen_utf8"})
          file.read(name);
        file.read_string_attr("attrs", "vlen_utf8");
      },
      std::runtime_error);
}

TEST_CASE("a closed or moved-from file refuses to work, and moves keep the file open") {
  ScratchDirectory scratch("closed");
  H5File file = H5File::create(scratch.file("a.h5"));
  file.write("x", {1}, std::vector<float>{1});
  H5File moved = std::move(file);
  CHECK(moved.is_open());
  CHECK_FALSE(file.is_open());  // NOLINT(bugprone-use-after-move): testing the moved-from state
  CHECK(moved.read_float("x", {1}) == std::vector<float>{1});
  CHECK_THROWS_AS(file.read("x"), std::logic_error);  // NOLINT(bugprone-use-after-move)
  moved.close();
  CHECK_FALSE(moved.is_open());
  CHECK(error_message<std::logic_error>([&] { moved.exists("x"); }).find("the file is closed") !=
        std::string::npos);

  H5File other = H5File::create(scratch.file("b.h5"));
  other = H5File::open_read(scratch.file("a.h5"));  // closes b.h5, takes over a.h5
  CHECK(other.path() == scratch.file("a.h5"));
  CHECK(other.read_float("x", {1}) == std::vector<float>{1});
}

// ---------------------------------------------------------------------------------------------
// Atomic replacement

TEST_CASE("write_file_atomically replaces the file and leaves no temp file") {
  ScratchDirectory scratch("atomic");
  const std::string path = scratch.file("checkpoint.h5");
  write_file_atomically(path,
                        [](H5File& file) { file.write("step", {}, std::vector<int64_t>{1}); });
  CHECK(H5File::open_read(path).read_int64("step", {}) == std::vector<int64_t>{1});
  write_file_atomically(path, [](H5File& file) {
    file.write("step", {}, std::vector<int64_t>{2});
    file.close();  // fill may close the file itself
  });
  CHECK(H5File::open_read(path).read_int64("step", {}) == std::vector<int64_t>{2});
  CHECK(scratch.entries() == std::vector<std::string>{"checkpoint.h5"});
}

TEST_CASE("when fill throws, the previous file is intact and the temp file is gone") {
  ScratchDirectory scratch("atomic_failure");
  const std::string path = scratch.file("checkpoint.h5");
  write_file_atomically(path, [](H5File& file) {
    file.write("weights", {3}, std::vector<float>{1, 2, 3});
  });
  const auto size_before = fs::file_size(path);

  std::string message = error_message<std::runtime_error>([&] {
    write_file_atomically(path, [](H5File& file) {
      file.write("weights", {3}, std::vector<float>{9, 9, 9});
      throw std::runtime_error("simulated failure while saving");
    });
  });
  CHECK(message == "simulated failure while saving");
  CHECK(fs::file_size(path) == size_before);
  CHECK(H5File::open_read(path).read_float("weights", {3}) == std::vector<float>{1, 2, 3});
  CHECK(scratch.entries() == std::vector<std::string>{"checkpoint.h5"});

  // A failing HDF5 call inside fill: same guarantees, and the wrapper's message comes through.
  message = error_message<std::runtime_error>([&] {
    write_file_atomically(path, [](H5File& file) {
      file.write("a", {1}, std::vector<float>{1});
      file.write("a", {1}, std::vector<float>{2});
    });
  });
  CHECK(message.find("already exists") != std::string::npos);
  CHECK(H5File::open_read(path).read_float("weights", {3}) == std::vector<float>{1, 2, 3});
  CHECK(scratch.entries() == std::vector<std::string>{"checkpoint.h5"});

  // With no previous file, nothing at all is left.
  const std::string fresh = scratch.file("fresh.h5");
  CHECK_THROWS_AS(write_file_atomically(fresh, [](H5File&) { throw std::logic_error("no"); }),
                  std::logic_error);
  CHECK_FALSE(fs::exists(fresh));
  CHECK(scratch.entries() == std::vector<std::string>{"checkpoint.h5"});

  CHECK(error_message([&] {
          write_file_atomically("/nonexistent_dir_glimpse/c.h5", [](H5File&) {});
        }).find("does not exist") != std::string::npos);
}

// A kill -9 while saving leaves "<name>.tmp.<pid>.<n>" behind; the next atomic write of that name
// removes it, but never a live process's temporary (it may be writing) or a file not of that form.
TEST_CASE("atomic writes remove the temporaries of dead writers only") {
  const fs::path dir = fs::temp_directory_path() / ("glimpse_stale_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A pid that no longer runs: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string base = (dir / "train_log.csv").string();
  const std::string dead = base + ".tmp." + std::to_string(child) + ".0";
  const std::string live = base + ".tmp." + std::to_string(::getppid()) + ".3";
  const std::string mine = base + ".tmp." + std::to_string(::getpid()) + ".999999";
  const std::string other = base + ".tmp.notapid";
  const std::string dead_checkpoint = (dir / "checkpoint.h5").string() + ".tmp." + std::to_string(child) + ".1";
  for (const std::string& path : {dead, live, mine, other, dead_checkpoint}) std::ofstream(path) << "x";
  write_file_atomically(base, "step,loss\n", "test");
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(live));
  CHECK(fs::exists(mine));
  CHECK(fs::exists(other));
  CHECK(fs::exists(dead_checkpoint));  // another file's temporaries are left to its own writer
  write_file_atomically((dir / "checkpoint.h5").string(),
                        [](H5File& file) { file.write("step", {}, std::vector<int64_t>{1}); });
  CHECK_FALSE(fs::exists(dead_checkpoint));
  fs::remove_all(dir);
}
