// The protobuf wire-format reader behind onnx_proto.h.
//
// Wire format in brief: each record starts with a varint key = (field_number << 3) | wire_type.
// Wire type 0 is a varint, 1 a little-endian 64-bit word, 2 a varint length followed by that many
// bytes (strings, sub-messages, packed repeated scalars), 5 a little-endian 32-bit word; 3 and 4
// (groups) are obsolete and ONNX never uses them, so they are rejected. Repeated scalar fields
// may arrive packed (one wire-type-2 record) or one record per value; both are accepted.
#include "tests/onnx/onnx_proto.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace glimpse::onnx {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

[[noreturn]] void malformed(const std::string& what, const char* message, const std::string& why) {
  throw std::runtime_error(what + ": malformed " + message + ": " + why);
}

// A bounded view of the bytes of one message; every read checks it stays inside.
class Reader {
 public:
  Reader(const char* begin, const char* end, const std::string& what, const char* message)
      : p_(begin), end_(end), what_(what), message_(message) {}

  bool done() const { return p_ == end_; }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) fail("a varint runs past the end of the message");
      const uint8_t byte = static_cast<uint8_t>(*p_++);
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && (byte & 0x7e) != 0) fail("a varint overflows 64 bits");
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    fail("a varint is longer than 10 bytes");
  }

  template <class Word>
  Word fixed() {
    if (static_cast<size_t>(end_ - p_) < sizeof(Word))
      fail("a fixed-width value runs past the end of the message");
    Word value;
    std::memcpy(&value, p_, sizeof(Word));  // the wire is little-endian, as are our targets
    p_ += sizeof(Word);
    return value;
  }

  // The payload of a length-delimited record, as a sub-range.
  Reader sub(const char* sub_message) {
    const uint64_t length = varint();
    if (length > static_cast<uint64_t>(end_ - p_))
      fail("a length of " + std::to_string(length) + " bytes runs past the end of the message (" +
           std::to_string(end_ - p_) + " bytes left)");
    Reader r(p_, p_ + length, what_, sub_message);
    p_ += length;
    return r;
  }

  std::string bytes() {
    Reader r = sub(message_);
    return std::string(r.p_, r.end_);
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case kVarint: varint(); return;
      case kFixed64: fixed<uint64_t>(); return;
      case kFixed32: fixed<uint32_t>(); return;
      case kLengthDelimited: sub(message_); return;
      default: fail("wire type " + std::to_string(wire_type) + " is not valid here");
    }
  }

  // Reads the next key; returns false at the end of the message.
  bool next(uint32_t& field, uint32_t& wire_type) {
    if (done()) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    wire_type = static_cast<uint32_t>(key & 7);
    if (field == 0 || key >> 3 > 0x1fffffff)
      fail("field number " + std::to_string(key >> 3) + " is outside [1, 2^29)");
    return true;
  }

  void expect(uint32_t wire_type, uint32_t expected, uint32_t field) {
    if (wire_type != expected)
      fail("field " + std::to_string(field) + " has wire type " + std::to_string(wire_type) +
           ", expected " + std::to_string(expected));
  }

  // A repeated scalar field: packed (wire type 2) or one value per record (`single`).
  template <class T, class ReadOne>
  void repeated(uint32_t wire_type, uint32_t single, uint32_t field, std::vector<T>& out,
                ReadOne read_one) {
    if (wire_type == kLengthDelimited) {
      Reader packed = sub(message_);
      while (!packed.done()) out.push_back(read_one(packed));
    } else {
      expect(wire_type, single, field);
      out.push_back(read_one(*this));
    }
  }

  [[noreturn]] void fail(const std::string& why) const { malformed(what_, message_, why); }
  const std::string& what() const { return what_; }

 private:
  const char* p_;
  const char* end_;
  const std::string& what_;
  const char* message_;
};

int64_t as_int64(uint64_t v) { return static_cast<int64_t>(v); }
// int32 fields are sign-extended to 64 bits on the wire; keep the low 32 bits.
int32_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v)); }

std::string read_string(Reader& r, uint32_t wire_type, uint32_t field) {
  r.expect(wire_type, kLengthDelimited, field);
  return r.bytes();
}

TensorProto read_tensor(Reader r) {
  TensorProto t;
  uint32_t field, wt;
  while (r.next(field, wt)) {
    switch (field) {
      case 1: r.repeated(wt, kVarint, field, t.dims, [](Reader& x) { return as_int64(x.varint()); }); break;
      case 2: r.expect(wt, kVarint, field); t.data_type = as_int32(r.varint()); break;
      case 4: r.repeated(wt, kFixed32, field, t.float_data, [](Reader& x) { return x.fixed<float>(); }); break;
      case 5: r.repeated(wt, kVarint, field, t.int32_data, [](Reader& x) { return as_int32(x.varint()); }); break;
      case 7: r.repeated(wt, kVarint, field, t.int64_data, [](Reader& x) { return as_int64(x.varint()); }); break;
      case 8: t.name = read_string(r, wt, field); break;
      case 9: t.raw_data = read_string(r, wt, field); t.has_raw_data = true; break;
      case 10: r.repeated(wt, kFixed64, field, t.double_data, [](Reader& x) { return x.fixed<double>(); }); break;
      case 11: r.repeated(wt, kVarint, field, t.uint64_data, [](Reader& x) { return x.varint(); }); break;
      case 14:  // data_location: EXTERNAL data lives in other files, which node tests never use
        r.expect(wt, kVarint, field);
        if (r.varint() != 0) r.fail("tensor '" + t.name + "' stores its data externally (not supported)");
        break;
      default: r.skip(wt);
    }
  }
  return t;
}

AttributeProto read_attribute(Reader r) {
  AttributeProto a;
  uint32_t field, wt;
  while (r.next(field, wt)) {
    switch (field) {
      case 1: a.name = read_string(r, wt, field); break;
      case 2: r.expect(wt, kFixed32, field); a.f = r.fixed<float>(); break;
      case 3: r.expect(wt, kVarint, field); a.i = as_int64(r.varint()); break;
      case 4: a.s = read_string(r, wt, field); break;
      case 5: r.expect(wt, kLengthDelimited, field); a.t.assign(1, read_tensor(r.sub("TensorProto"))); break;
      case 7: r.repeated(wt, kFixed32, field, a.floats, [](Reader& x) { return x.fixed<float>(); }); break;
      case 8: r.repeated(wt, kVarint, field, a.ints, [](Reader& x) { return as_int64(x.varint()); }); break;
      case 9: a.strings.push_back(read_string(r, wt, field)); break;
      case 20: r.expect(wt, kVarint, field); a.type = as_int32(r.varint()); break;
      default: r.skip(wt);
    }
  }
  return a;
}

NodeProto read_node(Reader r) {
  NodeProto n;
  uint32_t field, wt;
  while (r.next(field, wt)) {
    switch (field) {
      case 1: n.input.push_back(read_string(r, wt, field)); break;
      case 2: n.output.push_back(read_string(r, wt, field)); break;
      case 3: n.name = read_string(r, wt, field); break;
      case 4: n.op_type = read_string(r, wt, field); break;
      case 5: r.expect(wt, kLengthDelimited, field); n.attribute.push_back(read_attribute(r.sub("AttributeProto"))); break;
      case 7: n.domain = read_string(r, wt, field); break;
      default: r.skip(wt);
    }
  }
  return n;
}

// ValueInfoProto: only the name (field 1) matters here.
std::string read_value_info_name(Reader r) {
  std::string name;
  uint32_t field, wt;
  while (r.next(field, wt)) {
    if (field == 1) name = read_string(r, wt, field);
    else r.skip(wt);
  }
  return name;
}

GraphProto read_graph(Reader r) {
  GraphProto g;
  uint32_t field, wt;
  while (r.next(field, wt)) {
    switch (field) {
      case 1: r.expect(wt, kLengthDelimited, field); g.node.push_back(read_node(r.sub("NodeProto"))); break;
      case 2: g.name = read_string(r, wt, field); break;
      case 5: r.expect(wt, kLengthDelimited, field); g.initializer.push_back(read_tensor(r.sub("TensorProto"))); break;
      case 11: r.expect(wt, kLengthDelimited, field); g.input.push_back(read_value_info_name(r.sub("ValueInfoProto"))); break;
      case 12: r.expect(wt, kLengthDelimited, field); g.output.push_back(read_value_info_name(r.sub("ValueInfoProto"))); break;
      default: r.skip(wt);
    }
  }
  return g;
}

OperatorSetId read_opset(Reader r) {
  OperatorSetId id;
  uint32_t field, wt;
  while (r.next(field, wt)) {
    if (field == 1) id.domain = read_string(r, wt, field);
    else if (field == 2) { r.expect(wt, kVarint, field); id.version = as_int64(r.varint()); }
    else r.skip(wt);
  }
  return id;
}

// Width in bytes of one element in raw_data, 0 for types raw_data cannot hold.
size_t raw_width(int32_t data_type) {
  switch (data_type) {
    case kUint8: case kInt8: case kBool: return 1;
    case kUint16: case kInt16: case kFloat16: case kBfloat16: return 2;
    case kFloat: case kInt32: case kUint32: return 4;
    case kDouble: case kInt64: case kUint64: case kComplex64: return 8;
    case kComplex128: return 16;
    default: return 0;
  }
}

template <class Out>
std::vector<Out> decode(const TensorProto& t, const std::string& what) {
  const int64_t n = element_count(t, what);
  const std::string label = what + ": tensor '" + t.name + "' of type " + data_type_name(t.data_type);
  std::vector<Out> out;
  out.reserve(static_cast<size_t>(n));
  if (t.has_raw_data) {
    const size_t w = raw_width(t.data_type);
    if (w == 0) throw std::runtime_error(label + " cannot be stored as raw_data");
    if (t.raw_data.size() != static_cast<size_t>(n) * w)
      throw std::runtime_error(label + ": raw_data holds " + std::to_string(t.raw_data.size()) +
                               " bytes, dims " + std::to_string(n) + " elements of " +
                               std::to_string(w) + " bytes");
    const char* p = t.raw_data.data();
    for (int64_t k = 0; k < n; ++k, p += w) {
      auto load = [&](auto word) { std::memcpy(&word, p, sizeof(word)); return word; };
      switch (t.data_type) {
        case kFloat: out.push_back(static_cast<Out>(load(float{}))); break;
        case kDouble: out.push_back(static_cast<Out>(load(double{}))); break;
        case kInt8: out.push_back(static_cast<Out>(load(int8_t{}))); break;
        case kUint8: case kBool: out.push_back(static_cast<Out>(load(uint8_t{}))); break;
        case kInt16: out.push_back(static_cast<Out>(load(int16_t{}))); break;
        case kUint16: out.push_back(static_cast<Out>(load(uint16_t{}))); break;
        case kInt32: out.push_back(static_cast<Out>(load(int32_t{}))); break;
        case kUint32: out.push_back(static_cast<Out>(load(uint32_t{}))); break;
        case kInt64: out.push_back(static_cast<Out>(load(int64_t{}))); break;
        case kUint64: out.push_back(static_cast<Out>(load(uint64_t{}))); break;
        default: throw std::runtime_error(label + " has no numeric reading here");
      }
    }
    return out;
  }
  auto take = [&](const auto& field, const char* field_name) {
    if (static_cast<int64_t>(field.size()) != n)
      throw std::runtime_error(label + ": " + field_name + " holds " + std::to_string(field.size()) +
                               " values, dims " + std::to_string(n));
    for (auto v : field) out.push_back(static_cast<Out>(v));
  };
  switch (t.data_type) {
    case kFloat: take(t.float_data, "float_data"); break;
    case kDouble: take(t.double_data, "double_data"); break;
    case kInt8: case kUint8: case kInt16: case kUint16: case kInt32: case kBool:
      take(t.int32_data, "int32_data"); break;
    case kInt64: take(t.int64_data, "int64_data"); break;
    case kUint32: case kUint64: take(t.uint64_data, "uint64_data"); break;
    default: throw std::runtime_error(label + " has no numeric reading here");
  }
  return out;
}

}  // namespace

const char* data_type_name(int32_t data_type) {
  switch (data_type) {
    case kFloat: return "float32";
    case kUint8: return "uint8";
    case kInt8: return "int8";
    case kUint16: return "uint16";
    case kInt16: return "int16";
    case kInt32: return "int32";
    case kInt64: return "int64";
    case kString: return "string";
    case kBool: return "bool";
    case kFloat16: return "float16";
    case kDouble: return "float64";
    case kUint32: return "uint32";
    case kUint64: return "uint64";
    case kComplex64: return "complex64";
    case kComplex128: return "complex128";
    case kBfloat16: return "bfloat16";
    default: return "undefined";
  }
}

ModelProto parse_model(const std::string& bytes, const std::string& what) {
  Reader r(bytes.data(), bytes.data() + bytes.size(), what, "ModelProto");
  ModelProto m;
  bool has_graph = false;
  uint32_t field, wt;
  while (r.next(field, wt)) {
    switch (field) {
      case 1: r.expect(wt, kVarint, field); m.ir_version = as_int64(r.varint()); break;
      case 7: r.expect(wt, kLengthDelimited, field); m.graph = read_graph(r.sub("GraphProto")); has_graph = true; break;
      case 8: r.expect(wt, kLengthDelimited, field); m.opset_import.push_back(read_opset(r.sub("OperatorSetIdProto"))); break;
      default: r.skip(wt);
    }
  }
  if (!has_graph) r.fail("the model has no graph");
  return m;
}

TensorProto parse_tensor(const std::string& bytes, const std::string& what) {
  return read_tensor(Reader(bytes.data(), bytes.data() + bytes.size(), what, "TensorProto"));
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": read error");
  return buffer.str();
}

ModelProto load_model(const std::string& path) { return parse_model(read_file_bytes(path), path); }
TensorProto load_tensor(const std::string& path) { return parse_tensor(read_file_bytes(path), path); }

int64_t element_count(const TensorProto& tensor, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : tensor.dims) {
    if (d < 0) throw std::runtime_error(what + ": tensor '" + tensor.name + "' has negative dim " + std::to_string(d));
    if (d != 0 && n > std::numeric_limits<int32_t>::max() / d)
      throw std::runtime_error(what + ": tensor '" + tensor.name + "' has more than 2^31 elements");
    n *= d;
  }
  return n;
}

std::vector<double> values_as_double(const TensorProto& tensor, const std::string& what) {
  return decode<double>(tensor, what);
}

std::vector<int64_t> values_as_int64(const TensorProto& tensor, const std::string& what) {
  if (tensor.data_type == kFloat || tensor.data_type == kDouble)
    throw std::runtime_error(what + ": tensor '" + tensor.name + "' is " +
                             data_type_name(tensor.data_type) + ", expected an integer type");
  return decode<int64_t>(tensor, what);
}

}  // namespace glimpse::onnx
