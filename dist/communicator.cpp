// Choosing and starting a communicator (see communicator.h).
#include "dist/communicator.h"

#include <cstdlib>
#include <stdexcept>

#include "dist/backends.h"

#ifdef GLIMPSE_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace glimpse::dist {

namespace {

bool has(const std::string& backend) {
  for (const std::string& b : built_backends())
    if (b == backend) return true;
  return false;
}

// The rank's index on its machine as the launcher announces it, -1 when it does not.
int local_rank_from_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return -1;
}

// Makes GPU local_rank % count the current device. It must happen before anything touches CUDA
// (MPI_Init may, in a CUDA-aware MPI; glimpse's allocator and NCCL do): a context made first on
// the default device 0 would stay there, and every rank of the machine would share that GPU.
void select_gpu([[maybe_unused]] int local_rank) {
#ifdef GLIMPSE_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    throw std::runtime_error("dist: no CUDA device is visible to this rank");
  const cudaError_t code = cudaSetDevice(local_rank % count);
  if (code != cudaSuccess)
    throw std::runtime_error(std::string("dist: cudaSetDevice failed: ") + cudaGetErrorString(code));
#endif
}

}  // namespace

std::vector<std::string> built_backends() {
  std::vector<std::string> out{"none"};
#ifdef GLIMPSE_WITH_MPI
  out.push_back("mpi");
#endif
#ifdef GLIMPSE_WITH_NCCL
  out.push_back("nccl");
#endif
  return out;
}

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

std::string resolve_backend(const std::string& requested, bool gpu_device) {
  std::string backend = requested;
  if (requested == "auto") {
    if (!launched_by_mpi()) return "none";
    if (!has("mpi"))
      throw std::runtime_error(
          "dist: this process was launched by mpirun, but this build has no MPI support, so each rank "
          "would train alone and overwrite the others' checkpoints. Install OpenMPI (Debian: "
          "libopenmpi-dev openmpi-bin) and configure again with -DGLIMPSE_MPI=ON, or run without mpirun");
    backend = gpu_device && has("nccl") ? "nccl" : "mpi";
  }
  if (backend != "none" && backend != "mpi" && backend != "nccl")
    throw std::invalid_argument("dist: unknown backend '" + requested + "' (expected none, mpi, nccl or auto)");
  if (!has(backend)) {
    std::string built;
    for (const std::string& b : built_backends()) built += (built.empty() ? "" : ", ") + b;
    throw std::runtime_error(
        "dist: the " + backend + " backend is not built into this program (built: " + built + "). " +
        (backend == "mpi" ? "It needs OpenMPI (Debian: libopenmpi-dev openmpi-bin); configure with -DGLIMPSE_MPI=ON."
                          : "It needs CUDA, NCCL (nccl.h and libnccl) and MPI at configure time."));
  }
  if (backend == "nccl" && !gpu_device)
    throw std::runtime_error("dist: the nccl backend reduces GPU memory and needs --device cuda (use mpi on the CPU)");
  return backend;
}

std::unique_ptr<Communicator> make_communicator(const std::string& requested, bool gpu_device) {
  const std::string backend = resolve_backend(requested, gpu_device);  // throws the explanation
  if (backend == "none") return detail::make_single_process();
  // The launcher's local rank is known before MPI_Init; MPI's own answer only after it.
  const int launcher_local_rank = local_rank_from_launcher();
  if (gpu_device && launcher_local_rank >= 0) select_gpu(launcher_local_rank);
#ifdef GLIMPSE_WITH_MPI
  std::unique_ptr<Communicator> mpi = detail::make_mpi();
  if (gpu_device && launcher_local_rank < 0) select_gpu(mpi->local_rank());
#ifdef GLIMPSE_WITH_NCCL
  if (backend == "nccl") return detail::make_nccl(std::move(mpi));
#endif
  if (backend == "mpi") return mpi;
#endif
  throw std::invalid_argument("dist: unknown backend '" + backend + "'");
}

}  // namespace glimpse::dist
