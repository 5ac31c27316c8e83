// The communicator of data-parallel training: N copies of the training program ("ranks"), each on
// its own share of every batch, that must keep identical weights. Five operations are all the
// training loop needs: who am I (rank, size), add up a buffer over all ranks (all-reduce sum or
// average), copy a buffer from one rank to all (broadcast), and wait for everyone (barrier);
// cache_features also collects each rank's results on one rank (gather).
//
// Implementations, one file each (docs/distributed.md explains the choice):
//   none  single_process.cpp    one process: every operation is the identity (rank 0 of 1).
//   mpi   mpi_communicator.cpp  MPI (OpenMPI): float buffers in host memory.
//   nccl  nccl_communicator.cpp NCCL: float buffers in GPU memory; MPI carries the NCCL unique id
//                               and the small host-side values below.
// The MPI and NCCL ones are compiled only when the libraries were found (CMake GLIMPSE_MPI), and
// make_communicator says so clearly when a user asks for one that is not there.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace glimpse::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual std::string backend() const = 0;  // "none", "mpi" or "nccl"
  virtual int rank() const = 0;             // 0 .. size-1; rank 0 writes files
  virtual int size() const = 0;
  // This rank's index among the ranks on the same machine, and how many share it: which GPU to
  // use, how many CPU threads to take.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;

  // Where the float buffers of the collective operations below must be: host memory (false) or
  // the current CUDA device's memory (true, nccl).
  virtual bool device_buffers() const = 0;

  // In place, on every rank: data[i] = the sum (average) of data[i] over all ranks. Every rank
  // ends with the same bits, which is what keeps their weights identical.
  virtual void all_reduce_sum(float* data, size_t count) = 0;
  virtual void all_reduce_average(float* data, size_t count) = 0;
  // data = root's data, on every rank.
  virtual void broadcast(float* data, size_t count, int root) = 0;
  // Returns when every rank has called it.
  virtual void barrier() = 0;

  // Small control values, always in host memory whatever the backend: per-step token counts and
  // flags (doubles: exact for integers up to 2^53), and state digests (bytes).
  virtual void all_reduce_sum_host(double* data, size_t count) = 0;
  virtual void broadcast_host(void* data, size_t bytes, int root) = 0;
  // Host floats from every rank to one: on `root`, recv[r * count .. (r + 1) * count) = rank r's
  // send (recv holds size() * count floats there; it is not touched on the other ranks). What
  // cache_features needs to write, on rank 0, the features every rank computed.
  virtual void gather_host(const float* send, size_t count, float* recv, int root) = 0;

  // Ends the processes of every rank with `status`. A failure on one rank (a full disk on rank 0)
  // would otherwise leave the others waiting forever in their next collective operation.
  [[noreturn]] virtual void abort(int status) = 0;
};

// "none" always; "mpi" and "nccl" when this build has them.
std::vector<std::string> built_backends();

// Whether this process was started by an MPI launcher (mpirun/mpiexec, or srun with PMIx): the
// launchers set OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_SIZE in each rank's environment.
bool launched_by_mpi();

// The backend a --dist value means: "none", "mpi" and "nccl" as named; "auto" is "none" for a
// process not launched by MPI, otherwise "nccl" when training on the GPU and NCCL was built, else
// "mpi". Throws std::runtime_error naming what is missing when the backend is not built (also
// for "auto" under mpirun in a build without MPI: N unaware copies would each train the whole
// run and overwrite one another's checkpoints) or when nccl is asked for without a GPU device.
std::string resolve_backend(const std::string& requested, bool gpu_device);

// Starts the communicator of a --dist value (resolved as above; MPI_Init for mpi and nccl). With
// `gpu_device` the rank first selects GPU local_rank % (GPUs on the machine), before any CUDA
// memory exists.
std::unique_ptr<Communicator> make_communicator(const std::string& requested, bool gpu_device = false);

}  // namespace glimpse::dist
