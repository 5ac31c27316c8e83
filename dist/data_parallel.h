// Data-parallel training on top of a Communicator: what the training loop does with glimpse
// tensors at the start of a run and at each step (docs/distributed.md walks through it).
//
//   start:  broadcast(parameters, buffers, optimizer state) from rank 0, so every rank starts from
//           the same weights whatever it initialised or loaded;
//   step:   all_reduce_host({tokens, loss sum, ...}) — a few numbers — then, after the backward
//           pass, all_reduce_gradients: every gradient in ONE flat buffer, one collective call;
//   saves:  check_ranks_agree — the ranks' digests of their whole state compared.
//
// The buffers exchanged are float32 on the tensors' device. A communicator whose buffers live on
// the GPU (nccl) gets device pointers; a host one (mpi) gets host memory, through a copy when the
// tensors are on the GPU.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "tensor/tensor.h"

namespace glimpse::dist {

class DataParallel {
 public:
  explicit DataParallel(Communicator& comm) : comm_(comm) {}

  Communicator& comm() { return comm_; }
  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }

  // Every tensor (float32, any shape, all on one device) = root's, on every rank.
  void broadcast(const std::vector<Tensor*>& tensors, int root = 0);

  // Sums each parameter's .grad over the ranks, in one collective call over a flat buffer that
  // holds, in order: every gradient (zeros where a rank has none), every buffer of
  // `averaged_buffers` divided by the number of ranks (BatchNorm's moving statistics: their sum
  // is then the average), and one flag per parameter saying that the rank had a gradient. After
  // the call each parameter whose flag is set on some rank has as .grad the sum over the ranks (a
  // view into the flat buffer), one whose flag is set on none keeps no gradient (the optimizer
  // skips it, as it would in one process), and each averaged buffer holds the average.
  // The callers scale their losses so that the SUM is the gradient they want (see training.cpp).
  void all_reduce_gradients(const std::vector<Tensor*>& parameters,
                            const std::vector<Tensor*>& averaged_buffers);

  // In place: values[i] = the sum over the ranks (host memory, doubles).
  void all_reduce_host(std::vector<double>& values);

  // Throws std::runtime_error on every rank when the ranks' states differ: compares a 64-bit
  // FNV-1a digest of the tensors' bits (and of `counters`: steps, optimizer iterations) across
  // the ranks, and names each rank's digest. Returns the common digest (16 hex digits).
  std::string check_ranks_agree(const std::vector<Tensor*>& state, const std::vector<int64_t>& counters,
                                const std::string& when);

  void barrier();

  // Seconds spent inside the collective calls so far (the copies to and from them excluded):
  // the communication cost the benchmark reports. On a rank that waits for a slower one, the
  // wait counts too.
  double communication_seconds() const { return seconds_; }

 private:
  // Runs a collective over `flat` (contiguous float32), staging through host memory when the
  // communicator's buffers and the tensor are on different sides.
  template <class Fn>
  void on_buffer(Tensor& flat, Fn&& collective);
  template <class Fn>
  void timed(Fn&& fn);

  Communicator& comm_;
  double seconds_ = 0;
};

// The 64-bit FNV-1a digest (16 hex digits) of the tensors' float32 bits and of the counters.
std::string state_digest(const std::vector<Tensor*>& state, const std::vector<int64_t>& counters);

}  // namespace glimpse::dist
