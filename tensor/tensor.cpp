// Tensor construction, metadata, host/device transfer, dtype casts and printing.
#include "tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "tensor/autograd.h"
#include "tensor/cpu/allocator.h"
#include "tensor/op_helpers.h"
#include "tensor/profiler.h"

namespace glimpse {

using detail::fail;

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::I32: return "int32";
    case DType::F64: return "float64";
  }
  return "?";
}

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

size_t dtype_size(DType dtype) { return dtype == DType::F64 ? 8 : 4; }

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

// CPU blocks go through the caching allocator (tensor/cpu/allocator.h); CUDA's device_api has its
// own cache behind alloc/free.
Storage::Storage(size_t n_bytes, Device dev) : bytes(n_bytes), device(dev) {
  // Allocate at least one byte so that empty tensors still have a valid, unique pointer.
  const size_t allocated = n_bytes == 0 ? 1 : n_bytes;
  data = dev == Device::CPU ? cpu::cached_allocate(allocated) : device_api(dev).alloc(allocated);
}

Storage::~Storage() {
  if (!data) return;
  if (device == Device::CPU) {
    cpu::cached_free(data, bytes == 0 ? 1 : bytes);
  } else {
    device_api(device).free(data);
  }
}

// ---- creation -------------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) fail("Tensor::empty", "negative dimension in shape ", shape_str(shape));
  if (shape.size() > static_cast<size_t>(kMaxRank))
    fail("Tensor::empty", "rank ", shape.size(), " exceeds the maximum of ", kMaxRank);
  if (dtype == DType::F64 && device != Device::CPU)
    fail("Tensor::empty", "float64 tensors live on the CPU only (they serve gradient checks)");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  if (dtype == DType::I32) {
    std::vector<int32_t> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(i);
    return from_vector(v, {n}, device);
  }
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return from_vector(v, {n}, Device::CPU).to(dtype).to(device);
}

namespace {
template <class T>
Tensor tensor_from_host(const std::vector<T>& values, const Shape& shape, DType dtype,
                        Device device) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape))
    fail("Tensor::from_vector", values.size(), " values do not fill shape ", shape_str(shape),
         " (", shape_numel(shape), " elements)");
  Tensor t = Tensor::empty(shape, dtype, device);
  device_api(device).copy_from_host(t.impl()->storage->data, values.data(),
                                    values.size() * sizeof(T));
  return t;
}
}  // namespace

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s, Device d) {
  return tensor_from_host(v, s, DType::F32, d);
}
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s, Device d) {
  return tensor_from_host(v, s, DType::F64, d);
}
Tensor Tensor::from_vector(const std::vector<int32_t>& v, const Shape& s, Device d) {
  return tensor_from_host(v, s, DType::I32, d);
}

// ---- metadata -------------------------------------------------------------------------------------

namespace {
const TensorImpl& checked(const Tensor& t, const char* what) {
  if (!t.defined()) fail(what, "called on an undefined tensor");
  return *t.impl();
}
}  // namespace

const Shape& Tensor::shape() const { return checked(*this, "Tensor::shape").shape; }
const Shape& Tensor::strides() const { return checked(*this, "Tensor::strides").strides; }
int64_t Tensor::offset() const { return checked(*this, "Tensor::offset").offset; }
DType Tensor::dtype() const { return checked(*this, "Tensor::dtype").dtype; }
Device Tensor::device() const { return checked(*this, "Tensor::device").storage->device; }
int64_t Tensor::numel() const { return shape_numel(shape()); }

int64_t Tensor::dim(int axis) const {
  return shape()[detail::normalize_axis("Tensor::dim", axis, rank())];
}

bool Tensor::is_contiguous() const {
  const auto& s = shape();
  const auto& st = strides();
  int64_t expected = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (s[i] != 1 && st[i] != expected) return false;
    expected *= s[i];
  }
  return true;
}

template <class T>
T* Tensor::data() const {
  const TensorImpl& impl = checked(*this, "Tensor::data");
  constexpr DType wanted = std::is_same_v<T, float>    ? DType::F32
                           : std::is_same_v<T, double> ? DType::F64
                                                       : DType::I32;
  if (impl.dtype != wanted)
    fail("Tensor::data", "requested ", dtype_name(wanted), " from a ", dtype_name(impl.dtype),
         " tensor of shape ", shape_str(impl.shape));
  return static_cast<T*>(impl.storage->data) + impl.offset;
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;

// ---- copies and casts -----------------------------------------------------------------------------

namespace {
// A dense copy of `src` on its own device, without autograd.
Tensor dense_copy(const Tensor& src) {
  Tensor out = Tensor::empty(src.shape(), src.dtype(), src.device());
  const TensorImpl& impl = *src.impl();
  const char* from = static_cast<const char*>(impl.storage->data) +
                     impl.offset * static_cast<int64_t>(dtype_size(impl.dtype));
  if (src.is_contiguous()) {
    device_api(src.device()).copy_on_device(out.impl()->storage->data, from,
                                            src.numel() * dtype_size(src.dtype()));
  } else {
    StridedLayout layout;
    layout.rank = src.rank();
    for (int i = 0; i < src.rank(); ++i) {
      layout.shape[i] = impl.shape[i];
      layout.strides[i] = impl.strides[i];
    }
    device_api(src.device()).copy_strided(from, dtype_size(src.dtype()), layout,
                                          out.impl()->storage->data);
  }
  return out;
}
}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  profiler::Frame frame(profiler::FrameKind::Op, "contiguous", {}, *this);
  Tensor out = dense_copy(*this);
  if (any_requires_grad({*this}))
    record_node("contiguous", {*this}, out,
                [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  frame.outputs(out);
  return out;
}

Tensor Tensor::clone() const {
  profiler::Frame frame(profiler::FrameKind::Op, "clone", {}, *this);
  Tensor out = dense_copy(*this);
  if (any_requires_grad({*this}))
    record_node("clone", {*this}, out,
                [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  frame.outputs(out);
  return out;
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  profiler::Frame frame(profiler::FrameKind::Op, "to_device", {}, *this);
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), target);
  size_t bytes = numel() * dtype_size(dtype());
  const void* from = src.impl()->storage->data;
  from = static_cast<const char*>(from) + src.offset() * dtype_size(dtype());
  if (target == Device::CPU) {
    device_api(src.device()).copy_to_host(out.impl()->storage->data, from, bytes);
  } else if (src.device() == Device::CPU) {
    device_api(target).copy_from_host(out.impl()->storage->data, from, bytes);
  } else {
    fail("Tensor::to", "no direct copy between two accelerators");
  }
  if (any_requires_grad({*this})) {
    Device source_device = device();
    record_node("to_device", {*this}, out, [source_device](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{g[0].to(source_device)};
    });
  }
  frame.outputs(out);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  profiler::Frame frame(profiler::FrameKind::Op, "cast", {}, *this);
  Tensor src = contiguous().detach();
  Tensor out = empty(shape(), target, device());
  int64_t n = numel();
  if (dtype() == DType::I32) {
    detail::dispatch_float("Tensor::to", target, [&](auto t) {
      using T = decltype(t);
      detail::kernels_for<T>(device()).cast_from_i32(src.data<int32_t>(), out.data<T>(), n);
    });
  } else if (target == DType::I32) {
    detail::dispatch_float("Tensor::to", dtype(), [&](auto t) {
      using T = decltype(t);
      detail::kernels_for<T>(device()).cast_to_i32(src.data<T>(), out.data<int32_t>(), n);
    });
  } else {
    // float <-> double: on the CPU only (double tensors exist only there).
    if (device() != Device::CPU) fail("Tensor::to", "float64 casts are CPU only");
    if (target == DType::F64) {
      const float* s = src.data<float>();
      double* d = out.data<double>();
      for (int64_t i = 0; i < n; ++i) d[i] = s[i];
    } else {
      const double* s = src.data<double>();
      float* d = out.data<float>();
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
    }
    if (any_requires_grad({*this})) {
      DType source = dtype();
      record_node("cast", {*this}, out, [source](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0].to(source)};
      });
    }
  }
  frame.outputs(out);
  return out;
}

void Tensor::copy_(const Tensor& src) {
  if (src.shape() != shape())
    fail("Tensor::copy_", "shape mismatch: destination ", shape_str(shape()), ", source ",
         shape_str(src.shape()));
  if (src.dtype() != dtype())
    fail("Tensor::copy_", "dtype mismatch: destination ", dtype_name(dtype()), ", source ",
         dtype_name(src.dtype()));
  if (!is_contiguous()) fail("Tensor::copy_", "destination must be contiguous");
  Tensor dense = src.detach().to(device()).contiguous();
  void* to = static_cast<char*>(impl()->storage->data) + offset() * dtype_size(dtype());
  const void* from =
      static_cast<const char*>(dense.impl()->storage->data) + dense.offset() * dtype_size(dtype());
  device_api(device()).copy_on_device(to, from, numel() * dtype_size(dtype()));
}

void Tensor::fill_(double value) {
  if (!is_contiguous()) fail("Tensor::fill_", "tensor must be contiguous");
  if (dtype() == DType::I32) {
    device_api(device()).fill_i32(data<int32_t>(), numel(), static_cast<int32_t>(value));
    return;
  }
  detail::dispatch_float("Tensor::fill_", dtype(), [&](auto t) {
    using T = decltype(t);
    detail::kernels_for<T>(device()).fill(data<T>(), numel(), static_cast<T>(value));
  });
}

std::vector<double> Tensor::to_vector_f64() const {
  Tensor host = detach().to(Device::CPU).contiguous();
  if (host.dtype() == DType::F64) {
    const double* p = host.data<double>();
    return std::vector<double>(p, p + numel());
  }
  if (host.dtype() == DType::F32) {
    const float* p = host.data<float>();
    return std::vector<double>(p, p + numel());
  }
  const int32_t* p = host.data<int32_t>();
  return std::vector<double>(p, p + numel());
}

std::vector<float> Tensor::to_vector() const {
  Tensor host = detach().to(Device::CPU).contiguous();
  if (host.dtype() == DType::F32) {
    const float* p = host.data<float>();
    return std::vector<float>(p, p + numel());
  }
  std::vector<double> d = to_vector_f64();
  return std::vector<float>(d.begin(), d.end());
}

std::vector<int32_t> Tensor::to_vector_i32() const {
  Tensor host = detach().to(Device::CPU).contiguous();
  if (host.dtype() != DType::I32)
    fail("Tensor::to_vector_i32", "tensor is ", dtype_name(host.dtype()), ", not int32");
  const int32_t* p = host.data<int32_t>();
  return std::vector<int32_t>(p, p + numel());
}

double Tensor::item() const {
  if (numel() != 1)
    fail("Tensor::item", "needs a one-element tensor, got shape ", shape_str(shape()));
  return to_vector_f64()[0];
}

// ---- autograd accessors ---------------------------------------------------------------------------

bool Tensor::requires_grad() const { return checked(*this, "Tensor::requires_grad").requires_grad; }

Tensor& Tensor::set_requires_grad(bool enabled) {
  TensorImpl& impl = const_cast<TensorImpl&>(checked(*this, "Tensor::set_requires_grad"));
  if (enabled && impl.dtype == DType::I32)
    fail("Tensor::set_requires_grad", "int32 tensors cannot require grad (shape ",
         shape_str(impl.shape), ")");
  if (!enabled && impl.grad_fn)
    fail("Tensor::set_requires_grad", "cannot turn off requires_grad of a non-leaf; use detach()");
  impl.requires_grad = enabled;
  return *this;
}

bool Tensor::is_leaf() const { return checked(*this, "Tensor::is_leaf").grad_fn == nullptr; }

Tensor Tensor::grad() const {
  const TensorImpl& impl = checked(*this, "Tensor::grad");
  return impl.grad ? Tensor(impl.grad) : Tensor();
}

void Tensor::zero_grad() { const_cast<TensorImpl&>(checked(*this, "Tensor::zero_grad")).grad.reset(); }

Tensor Tensor::detach() const {
  const TensorImpl& impl = checked(*this, "Tensor::detach");
  auto out = std::make_shared<TensorImpl>();
  out->storage = impl.storage;
  out->shape = impl.shape;
  out->strides = impl.strides;
  out->offset = impl.offset;
  out->dtype = impl.dtype;
  return Tensor(std::move(out));
}

void Tensor::backward() const {
  if (numel() != 1)
    fail("Tensor::backward", "needs a scalar (one-element) tensor, got shape ", shape_str(shape()),
         "; pass the output gradient explicitly");
  run_backward(*this, Tensor::ones(shape(), dtype(), device()));
}

void Tensor::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

// ---- printing -------------------------------------------------------------------------------------

namespace {
void print_axis(std::ostream& out, const std::vector<double>& values, const Shape& shape,
                const Shape& strides, int axis, int64_t base, int max_per_axis, int indent) {
  const int64_t n = shape[axis];
  out << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > max_per_axis && i == max_per_axis / 2) {
      out << "...";
      i = n - max_per_axis / 2 - 1;
      if (axis + 1 < static_cast<int>(shape.size())) out << ",\n" << std::string(indent + 1, ' ');
      else out << ", ";
      continue;
    }
    if (axis + 1 == static_cast<int>(shape.size())) {
      out << std::setw(9) << std::setprecision(4) << values[base + i * strides[axis]];
    } else {
      print_axis(out, values, shape, strides, axis + 1, base + i * strides[axis], max_per_axis,
                 indent + 1);
    }
    if (i + 1 < n) out << (axis + 1 == static_cast<int>(shape.size()) ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  out << "]";
}
}  // namespace

std::string Tensor::to_string(int max_per_axis) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream out;
  out << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype())
      << ", device=" << device_name(device());
  if (requires_grad()) out << ", requires_grad";
  if (impl()->grad_fn) out << ", grad_fn=" << impl()->grad_fn->op_name;
  out << ")\n";
  std::vector<double> values = to_vector_f64();
  if (rank() == 0) {
    out << values[0];
  } else {
    print_axis(out, values, shape(), contiguous_strides(shape()), 0, 0, max_per_axis, 0);
  }
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) {
  return out << tensor.to_string();
}

}  // namespace glimpse
