// The MPI communicator: float buffers in host memory, reduced with MPI_Allreduce over
// MPI_COMM_WORLD. OpenMPI's algorithms for MPI_SUM combine the ranks' values in an order that is
// symmetric between them (pairs, rings, trees), so every rank receives the same bits; the
// training loop still compares digests of the ranks' state at each checkpoint, in case an MPI
// library does otherwise.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "dist/backends.h"

namespace glimpse::dist::detail {

namespace {

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("MPI: ") + what + " failed: " + std::string(text, length));
}

// MPI counts are ints: longer buffers go in pieces of at most INT_MAX elements.
template <class Fn>
void in_chunks(size_t count, Fn&& fn) {
  for (size_t done = 0; done < count;) {
    const size_t n = std::min<size_t>(count - done, INT_MAX);
    fn(done, static_cast<int>(n));
    done += n;
  }
}

class Mpi final : public Communicator {
 public:
  Mpi() {
    int initialized = 0;
    check(MPI_Initialized(&initialized), "MPI_Initialized");
    if (!initialized) {
      // Only the main thread calls MPI (the data loader's and OpenMP's threads never do).
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    }
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    // The ranks that share this machine's memory: its GPUs and cores are divided among them.
    MPI_Comm local;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
          "MPI_Comm_split_type");
    check(MPI_Comm_rank(local, &local_rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
    MPI_Comm_free(&local);
  }
  ~Mpi() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
  }

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  bool device_buffers() const override { return false; }

  void all_reduce_sum(float* data, size_t count) override {
    in_chunks(count, [&](size_t offset, int n) {
      check(MPI_Allreduce(MPI_IN_PLACE, data + offset, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    });
  }
  void all_reduce_average(float* data, size_t count) override {
    all_reduce_sum(data, count);
    // One rounding after the exact-as-possible sum; the same on every rank.
    const float scale = 1.0f / static_cast<float>(size_);
    for (size_t i = 0; i < count; ++i) data[i] *= scale;
  }
  void broadcast(float* data, size_t count, int root) override {
    in_chunks(count, [&](size_t offset, int n) {
      check(MPI_Bcast(data + offset, n, MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  void all_reduce_sum_host(double* data, size_t count) override {
    in_chunks(count, [&](size_t offset, int n) {
      check(MPI_Allreduce(MPI_IN_PLACE, data + offset, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    });
  }
  void broadcast_host(void* data, size_t bytes, int root) override {
    in_chunks(bytes, [&](size_t offset, int n) {
      check(MPI_Bcast(static_cast<char*>(data) + offset, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }
  void gather_host(const float* send, size_t count, float* recv, int root) override {
    // MPI_Gather places rank r's block at r * count in one call, so the count cannot be split
    // into pieces as above; a block of 2^31 floats (8 GB) is far beyond any batch of features.
    if (count > static_cast<size_t>(INT_MAX))
      throw std::runtime_error("MPI gather: " + std::to_string(count) + " floats per rank is more than MPI's int count");
    check(MPI_Gather(send, static_cast<int>(count), MPI_FLOAT, rank_ == root ? recv : nullptr,
                     static_cast<int>(count), MPI_FLOAT, root, MPI_COMM_WORLD),
          "MPI_Gather");
  }
  [[noreturn]] void abort(int status) override {
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);  // MPI_Abort does not return; this keeps [[noreturn]] honest if it did
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool owns_mpi_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi() { return std::make_unique<Mpi>(); }

}  // namespace glimpse::dist::detail
