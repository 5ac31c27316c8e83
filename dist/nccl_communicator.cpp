// The NCCL communicator: float buffers in the GPU memory of the device this rank selected, reduced
// by NCCL (NVLink, PCIe, InfiniBand) without a copy through the host. NCCL has no launcher of its
// own: rank 0 makes the communicator's unique id and MPI broadcasts it; MPI also carries the
// small host-side values (token counts, flags, digests) and the barrier.
//
// Every collective is queued on glimpse's CUDA stream, so it runs after the backward pass that
// produced the gradients and before the optimizer that reads them, and is then waited for: the
// training loop times its communication, and a failing collective is reported at its call.
#include <cstdlib>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

#include "cuda/backend.h"
#include "dist/backends.h"

#if !defined(NCCL_VERSION_CODE) || NCCL_VERSION_CODE < NCCL_VERSION(2, 10, 0)
#error "glimpse's NCCL communicator needs NCCL 2.10 or newer (ncclAvg)"
#endif

namespace glimpse::dist::detail {

namespace {

void check(ncclResult_t code, const char* what) {
  if (code != ncclSuccess) throw std::runtime_error(std::string("NCCL: ") + what + " failed: " + ncclGetErrorString(code));
}
void check(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(code));
}

class Nccl final : public Communicator {
 public:
  explicit Nccl(std::unique_ptr<Communicator> host) : host_(std::move(host)) {
    ncclUniqueId id{};
    if (host_->rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_->broadcast_host(&id, sizeof id, 0);
    check(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()), "ncclCommInitRank");
  }
  ~Nccl() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  std::string backend() const override { return "nccl"; }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  bool device_buffers() const override { return true; }

  void all_reduce_sum(float* data, size_t count) override { all_reduce(data, count, ncclSum); }
  void all_reduce_average(float* data, size_t count) override { all_reduce(data, count, ncclAvg); }
  void broadcast(float* data, size_t count, int root) override {
    check(ncclBroadcast(data, data, count, ncclFloat32, root, comm_, cuda::stream()), "ncclBroadcast");
    check(cudaStreamSynchronize(cuda::stream()), "cudaStreamSynchronize");
  }
  void barrier() override { host_->barrier(); }
  void all_reduce_sum_host(double* data, size_t count) override { host_->all_reduce_sum_host(data, count); }
  void broadcast_host(void* data, size_t bytes, int root) override { host_->broadcast_host(data, bytes, root); }
  void gather_host(const float* send, size_t count, float* recv, int root) override {
    host_->gather_host(send, count, recv, root);
  }
  [[noreturn]] void abort(int status) override {
    // NCCL kernels waiting for a dead peer never finish: abort the communicator, then MPI.
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    host_->abort(status);
    std::abort();  // not reached: the host communicator's abort does not return
  }

 private:
  void all_reduce(float* data, size_t count, ncclRedOp_t op) {
    check(ncclAllReduce(data, data, count, ncclFloat32, op, comm_, cuda::stream()), "ncclAllReduce");
    check(cudaStreamSynchronize(cuda::stream()), "cudaStreamSynchronize");
  }

  std::unique_ptr<Communicator> host_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl(std::unique_ptr<Communicator> host) {
  return std::make_unique<Nccl>(std::move(host));
}

}  // namespace glimpse::dist::detail
