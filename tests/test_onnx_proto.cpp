// The protobuf reader of the ONNX node-test harness (tests/onnx/onnx_proto.h) on hand-encoded
// messages: both encodings of repeated fields, raw_data, and malformed input rejected with a
// message that says what is wrong.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "tests/onnx/onnx_proto.h"

using namespace glimpse::onnx;

namespace {
// Minimal encoders, so each case shows its bytes' meaning.
std::string varint(uint64_t v) {
  std::string out;
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    out.push_back(static_cast<char>(v ? byte | 0x80 : byte));
  } while (v);
  return out;
}
std::string key(uint32_t field, uint32_t wire_type) { return varint(uint64_t(field) << 3 | wire_type); }
std::string bytes_field(uint32_t field, const std::string& payload) {
  return key(field, 2) + varint(payload.size()) + payload;
}
std::string float_bytes(float f) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &f, 4);
  return out;
}
}  // namespace

TEST_CASE("a float tensor with packed dims and float_data") {
  const std::string msg = bytes_field(1, varint(2) + varint(3)) + key(2, 0) + varint(kFloat) +
                          bytes_field(8, "x") +
                          bytes_field(4, float_bytes(1) + float_bytes(2) + float_bytes(3) +
                                             float_bytes(4) + float_bytes(5) + float_bytes(-6.5f));
  TensorProto t = parse_tensor(msg, "case");
  CHECK(t.name == "x");
  CHECK(t.dims == std::vector<int64_t>{2, 3});
  CHECK(values_as_double(t, "case") == std::vector<double>{1, 2, 3, 4, 5, -6.5});
}

TEST_CASE("unpacked int64 values, negative varints and raw_data") {
  // int64 -2 is a ten-byte varint (two's complement); dims unpacked, one record each.
  const std::string msg = key(1, 0) + varint(2) + key(2, 0) + varint(kInt64) + key(7, 0) +
                          varint(uint64_t(-2)) + key(7, 0) + varint(7);
  TensorProto t = parse_tensor(msg, "case");
  CHECK(values_as_int64(t, "case") == std::vector<int64_t>{-2, 7});

  std::string raw = float_bytes(0.25f) + float_bytes(-1);
  TensorProto r = parse_tensor(key(1, 0) + varint(2) + key(2, 0) + varint(kFloat) + bytes_field(9, raw), "raw");
  CHECK(values_as_double(r, "raw") == std::vector<double>{0.25, -1});
  // A scalar: no dims, one value.
  TensorProto s = parse_tensor(key(2, 0) + varint(kFloat) + bytes_field(9, float_bytes(3)), "scalar");
  CHECK(element_count(s, "scalar") == 1);
}

TEST_CASE("a model: graph, node, attributes, opset; unknown fields skipped") {
  const std::string attr = bytes_field(1, "axis") + key(20, 0) + varint(kAttrInt) + key(3, 0) + varint(uint64_t(-1));
  const std::string ints = bytes_field(1, "perm") + key(20, 0) + varint(kAttrInts) + bytes_field(8, varint(1) + varint(0));
  const std::string node = bytes_field(1, "a") + bytes_field(1, "") + bytes_field(2, "y") +
                           bytes_field(4, "Softmax") + bytes_field(5, attr) + bytes_field(5, ints) +
                           bytes_field(6, "a doc string to skip");
  const std::string graph = bytes_field(1, node) + bytes_field(11, bytes_field(1, "a")) +
                            bytes_field(12, bytes_field(1, "y")) + key(99, 5) + float_bytes(1);
  const std::string model = key(1, 0) + varint(8) + bytes_field(7, graph) +
                            bytes_field(8, bytes_field(1, "") + key(2, 0) + varint(13)) +
                            key(5, 1) + std::string(8, '\0');
  ModelProto m = parse_model(model, "model");
  CHECK(m.ir_version == 8);
  REQUIRE(m.opset_import.size() == 1);
  CHECK(m.opset_import[0].version == 13);
  REQUIRE(m.graph.node.size() == 1);
  const NodeProto& n = m.graph.node[0];
  CHECK(n.op_type == "Softmax");
  CHECK(n.input == std::vector<std::string>{"a", ""});
  REQUIRE(n.attribute.size() == 2);
  CHECK(n.attribute[0].i == -1);
  CHECK(n.attribute[1].ints == std::vector<int64_t>{1, 0});
  CHECK(m.graph.input == std::vector<std::string>{"a"});
  CHECK(m.graph.output == std::vector<std::string>{"y"});
}

TEST_CASE("malformed messages are rejected with the reason") {
  auto fails = [](const std::string& msg, const char* text) {
    CHECK_THROWS_WITH(parse_tensor(msg, "bad.pb"), doctest::Contains(text));
  };
  fails(key(1, 0) + "\x80", "bad.pb: malformed TensorProto: a varint runs past the end");
  fails(key(8, 2) + varint(10) + "abc", "a length of 10 bytes runs past the end of the message (3 bytes left)");
  fails(key(4, 5) + "\x01\x02", "a fixed-width value runs past the end");
  fails(key(2, 2) + varint(0), "field 2 has wire type 2, expected 0");
  fails(key(3, 3), "wire type 3 is not valid here");
  fails(std::string("\x00", 1), "field number 0 is outside");
  fails(key(1, 0) + std::string(10, '\xff') + "\x01", "a varint overflows 64 bits");
  CHECK_THROWS_WITH(parse_model(key(1, 0) + varint(8), "m.onnx"), doctest::Contains("the model has no graph"));
  // A nested message that overruns its parent's bounds is caught by the inner reader.
  CHECK_THROWS_WITH(parse_model(bytes_field(7, bytes_field(1, key(4, 2) + varint(5) + "ab")), "m.onnx"),
                    doctest::Contains("malformed NodeProto: a length of 5 bytes"));
  // Values that do not match dims.
  TensorProto t = parse_tensor(key(1, 0) + varint(3) + key(2, 0) + varint(kFloat) + bytes_field(9, float_bytes(1)), "t");
  CHECK_THROWS_WITH(values_as_double(t, "t.pb"), doctest::Contains("raw_data holds 4 bytes, dims 3 elements"));
  TensorProto neg = parse_tensor(key(1, 0) + varint(uint64_t(-1)), "n");
  CHECK_THROWS_WITH(element_count(neg, "n.pb"), doctest::Contains("negative dim -1"));
  CHECK_THROWS_WITH(load_model("/nonexistent/model.onnx"), doctest::Contains("cannot open"));
}
