// Shared plumbing for the ops_*.cpp files: argument checks that produce readable errors, and the
// dispatch from a tensor's dtype to the right typed kernel table. Private to tensor/.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

#include "tensor/autograd.h"
#include "tensor/kernels.h"
#include "tensor/tensor.h"

namespace glimpse::detail {

template <class T>
const Kernels<T>& kernels_for(Device device);
template <>
inline const Kernels<float>& kernels_for<float>(Device device) { return kernels_f32(device); }
template <>
inline const Kernels<double>& kernels_for<double>(Device device) { return kernels_f64(device); }

// Builds an error message from pieces: fail("conv2d", "kernel ", shape_str(s), " ...").
template <class... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  std::ostringstream message;
  message << op << ": ";
  (message << ... << parts);
  throw std::invalid_argument(message.str());
}

inline void check_defined(const char* op, const Tensor& t, const char* what) {
  if (!t.defined()) fail(op, what, " is an undefined tensor");
}

// Float tensors only (F32 or F64).
inline void check_float(const char* op, const Tensor& t, const char* what) {
  check_defined(op, t, what);
  if (t.dtype() == DType::I32)
    fail(op, what, " must be a float tensor, got int32 of shape ", shape_str(t.shape()));
}

inline void check_same_dtype_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    fail(op, "dtype mismatch: ", dtype_name(a.dtype()), " ", shape_str(a.shape()), " vs ",
         dtype_name(b.dtype()), " ", shape_str(b.shape()));
  if (a.device() != b.device())
    fail(op, "device mismatch: ", device_name(a.device()), " ", shape_str(a.shape()), " vs ",
         device_name(b.device()), " ", shape_str(b.shape()));
}

inline void check_rank(const char* op, const Tensor& t, int rank, const char* what) {
  if (t.rank() != rank)
    fail(op, what, " must have rank ", rank, ", got shape ", shape_str(t.shape()));
}

inline void check_nonempty(const char* op, const Tensor& t, const char* what) {
  if (t.numel() == 0) fail(op, what, " is empty (shape ", shape_str(t.shape()), ")");
}

inline int normalize_axis(const char* op, int axis, int rank) {
  if (axis < -rank || axis >= rank)
    fail(op, "axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// Calls fn(T{}) with T = float or double according to the tensor's dtype.
template <class Fn>
decltype(auto) dispatch_float(const char* op, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: return fn(float{});
    case DType::F64: return fn(double{});
    default: break;
  }
  fail(op, "expected a float tensor, got ", dtype_name(dtype));
}

}  // namespace glimpse::detail
