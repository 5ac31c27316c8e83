// DataParallel (see data_parallel.h).
#include "dist/data_parallel.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace glimpse::dist {

namespace {

// All tensors share one device and are float32: the flat buffer is one allocation there.
Device common_device(const std::vector<Tensor*>& tensors, const char* what) {
  Device device = Device::CPU;
  bool first = true;
  for (const Tensor* t : tensors) {
    if (t->dtype() != DType::F32)
      throw std::invalid_argument(std::string("dist: ") + what + ": only float32 tensors are exchanged");
    if (!first && t->device() != device)
      throw std::invalid_argument(std::string("dist: ") + what + ": tensors on different devices");
    device = t->device();
    first = false;
  }
  return device;
}

int64_t total_numel(const std::vector<Tensor*>& tensors) {
  int64_t n = 0;
  for (const Tensor* t : tensors) n += t->numel();
  return n;
}

// The flat view of `flat` that holds a tensor of `shape` at `offset` (shares flat's storage).
Tensor part(const Tensor& flat, int64_t offset, const Shape& shape) {
  return reshape(slice(flat, 0, offset, offset + shape_numel(shape)), shape);
}

void fnv1a(uint64_t& hash, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 1099511628211ull;
  }
}

}  // namespace

template <class Fn>
void DataParallel::timed(Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

template <class Fn>
void DataParallel::on_buffer(Tensor& flat, Fn&& collective) {
  const size_t n = static_cast<size_t>(flat.numel());
  const bool on_gpu = flat.device() != Device::CPU;
  if (comm_.device_buffers() && !on_gpu)
    throw std::invalid_argument("dist: the " + comm_.backend() + " backend exchanges GPU memory, the tensors are on the CPU");
  if (comm_.device_buffers() == on_gpu) {
    timed([&] { collective(flat.data<float>(), n); });
    return;
  }
  // A host communicator and GPU tensors: through host memory.
  std::vector<float> host = flat.to_vector();
  timed([&] { collective(host.data(), n); });
  flat.copy_(Tensor::from_vector(host, flat.shape()));
}

void DataParallel::broadcast(const std::vector<Tensor*>& tensors, int root) {
  if (comm_.size() == 1 || tensors.empty()) return;
  NoGradGuard no_grad;
  const Device device = common_device(tensors, "broadcast");
  Tensor flat = Tensor::empty({total_numel(tensors)}, DType::F32, device);
  int64_t offset = 0;
  for (Tensor* t : tensors) {
    part(flat, offset, t->shape()).copy_(t->detach());
    offset += t->numel();
  }
  on_buffer(flat, [&](float* data, size_t n) { comm_.broadcast(data, n, root); });
  offset = 0;
  for (Tensor* t : tensors) {
    // copy_ keeps each tensor's own storage: modules and the optimizer hold pointers to it.
    t->copy_(part(flat, offset, t->shape()));
    offset += t->numel();
  }
}

void DataParallel::all_reduce_gradients(const std::vector<Tensor*>& parameters,
                                        const std::vector<Tensor*>& averaged_buffers) {
  NoGradGuard no_grad;
  std::vector<Tensor*> everything = parameters;
  everything.insert(everything.end(), averaged_buffers.begin(), averaged_buffers.end());
  const Device device = common_device(everything, "all_reduce_gradients");
  const int64_t P = static_cast<int64_t>(parameters.size());
  const int64_t grads = total_numel(parameters), buffers = total_numel(averaged_buffers);
  Tensor flat = Tensor::empty({grads + buffers + P}, DType::F32, device);

  std::vector<float> flags(P, 0.0f);
  int64_t offset = 0;
  for (int64_t i = 0; i < P; ++i) {
    const Tensor* p = parameters[i];
    Tensor slot = slice(flat, 0, offset, offset + p->numel());
    const Tensor g = p->grad();
    if (g.defined()) {
      slot.copy_(reshape(g.detach(), {p->numel()}));
      flags[i] = 1.0f;
    } else {
      slot.fill_(0.0);
    }
    offset += p->numel();
  }
  const double inverse = 1.0 / comm_.size();
  for (const Tensor* b : averaged_buffers) {
    part(flat, offset, b->shape()).copy_(comm_.size() == 1 ? b->detach() : mul_scalar(b->detach(), inverse));
    offset += b->numel();
  }
  slice(flat, 0, offset, offset + P).copy_(Tensor::from_vector(flags, {P}));

  on_buffer(flat, [&](float* data, size_t n) { comm_.all_reduce_sum(data, n); });

  const std::vector<float> any = slice(flat, 0, offset, offset + P).to_vector();
  offset = 0;
  for (int64_t i = 0; i < P; ++i) {
    Tensor* p = parameters[i];
    if (any[i] > 0) {
      // The reduced gradient IS the parameter's gradient: a view into the flat buffer, no copy.
      p->impl()->grad = part(flat, offset, p->shape()).detach().impl_ptr();
    } else {
      p->zero_grad();
    }
    offset += p->numel();
  }
  for (Tensor* b : averaged_buffers) {
    b->copy_(part(flat, offset, b->shape()));
    offset += b->numel();
  }
}

void DataParallel::all_reduce_host(std::vector<double>& values) {
  timed([&] { comm_.all_reduce_sum_host(values.data(), values.size()); });
}

void DataParallel::barrier() {
  timed([&] { comm_.barrier(); });
}

std::string state_digest(const std::vector<Tensor*>& state, const std::vector<int64_t>& counters) {
  uint64_t hash = 1469598103934665603ull;
  for (const Tensor* t : state) {
    const std::vector<float> values = t->to_vector();
    fnv1a(hash, values.data(), values.size() * sizeof(float));
  }
  fnv1a(hash, counters.data(), counters.size() * sizeof(int64_t));
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

std::string DataParallel::check_ranks_agree(const std::vector<Tensor*>& state,
                                            const std::vector<int64_t>& counters, const std::string& when) {
  const std::string mine = state_digest(state, counters);
  // Each rank's digest to all: N broadcasts of 16 bytes, at checkpoints only.
  std::vector<std::string> all(comm_.size());
  for (int r = 0; r < comm_.size(); ++r) {
    char buffer[16];
    if (r == comm_.rank()) std::memcpy(buffer, mine.data(), 16);
    timed([&] { comm_.broadcast_host(buffer, sizeof buffer, r); });
    all[r].assign(buffer, 16);
  }
  for (const std::string& d : all) {
    if (d == all[0]) continue;
    std::string list;
    for (int r = 0; r < comm_.size(); ++r) list += "\n  rank " + std::to_string(r) + ": " + all[r];
    throw std::runtime_error("dist: the ranks' weights and optimizer state differ " + when +
                             " (digests below); the run stops rather than save one rank's state." + list);
  }
  return mine;
}

}  // namespace glimpse::dist
