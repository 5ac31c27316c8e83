// Tensor: a shared, typed block of device memory seen through a shape, strides and an offset,
// plus the autograd bookkeeping (requires_grad, the accumulated .grad, the node that made it).
//
// A Tensor is a cheap handle (one shared_ptr): copying it shares the data, like a NumPy array or a
// torch.Tensor. Views (reshape of contiguous data, slice, transpose) share storage too; ops that
// need dense rows call contiguous() first, which copies only when the view is not already dense.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "tensor/kernels.h"

namespace glimpse {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& shape);
const char* dtype_name(DType dtype);
const char* device_name(Device device);
size_t dtype_size(DType dtype);

// A block of memory on one device, freed through that device's allocator.
struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
};

struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;
  DType dtype = DType::F32;

  // Autograd. A leaf that requires grad accumulates into `grad`; a non-leaf points at the node
  // that produced it (output number `output_index` of that node).
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  int output_index = 0;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                     Device device = Device::CPU);
  static Tensor arange(int64_t n, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            Device device = Device::CPU);
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            Device device = Device::CPU);
  static Tensor from_vector(const std::vector<int32_t>& values, const Shape& shape,
                            Device device = Device::CPU);

  // ---- metadata ---------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int rank() const { return static_cast<int>(shape().size()); }
  int64_t dim(int axis) const;  // negative axes count from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  const Shape& strides() const;
  int64_t offset() const;

  // ---- data access ------------------------------------------------------------------------
  // Pointer to the first element (offset applied). Checks the element type.
  template <class T>
  T* data() const;
  std::vector<float> to_vector() const;          // any float dtype, any device, copied to host
  std::vector<double> to_vector_f64() const;
  std::vector<int32_t> to_vector_i32() const;
  double item() const;                           // a one-element tensor's value

  Tensor to(Device device) const;                // copies unless already there (differentiable)
  Tensor to(DType dtype) const;                  // float <-> double <-> int32 casts
  Tensor contiguous() const;                     // differentiable; no copy when already dense
  Tensor clone() const;                          // always a fresh copy (differentiable)
  void copy_(const Tensor& src);                 // in-place copy of values (no autograd)
  void fill_(double value);                      // in-place (no autograd)

  // ---- autograd ---------------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool enabled = true);
  bool is_leaf() const;
  Tensor grad() const;                           // undefined until a backward reached it
  void zero_grad();                              // drops the accumulated gradient
  void backward() const;                         // seeds d(self)/d(self) = 1; self must be scalar
  void backward(const Tensor& grad_output) const;
  Tensor detach() const;                         // shares data, cut from the graph

  std::string to_string(int max_per_axis = 6) const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

// Row-major contiguous strides for a shape.
Shape contiguous_strides(const Shape& shape);

}  // namespace glimpse
