// The constructors of the communicator implementations, each defined in its own file (and the
// MPI and NCCL ones only in builds that have those libraries). Internal to dist/.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace glimpse::dist::detail {

std::unique_ptr<Communicator> make_single_process();
#ifdef GLIMPSE_WITH_MPI
// Initialises MPI unless the program already did (and then finalises it only if it did).
std::unique_ptr<Communicator> make_mpi();
#endif
#ifdef GLIMPSE_WITH_NCCL
// Takes the MPI communicator that carries the unique id and the host-side values; the CUDA device
// must already be selected.
std::unique_ptr<Communicator> make_nccl(std::unique_ptr<Communicator> host);
#endif

}  // namespace glimpse::dist::detail
