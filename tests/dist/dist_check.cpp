// Checks of dist/ run under mpirun by tests/dist/run_tests.sh (ctest's dist_* tests):
//
//   dist_check comm BACKEND        the communicator's operations on every rank, against values
//                                  computed independently (mpi; nccl: the same buffers through
//                                  NCCL on the GPU and through MPI on the host must agree)
//   dist_check train DATA_DIR OUT STEPS
//                                  trains a tiny captioner (its encoder trained: BatchNorm
//                                  statistics change every step) for STEPS steps on all ranks,
//                                  then gathers each rank's digest of its whole state with raw MPI
//                                  calls (not through the code under test) and requires them equal;
//                                  then changes one weight on the last rank and requires
//                                  check_ranks_agree to refuse on every rank.
//
// Exit status: 0 pass, 1 fail, 77 skip (the backend is not built, or nccl without a GPU).
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "io/batches.h"
#include "io/captions.h"
#include "models/training.h"
#include "tensor/ops.h"

using namespace glimpse;

namespace {

constexpr int kSkip = 77;

int failures = 0;
void expect(bool ok, const std::string& what, int rank) {
  if (ok) return;
  ++failures;
  std::cerr << "FAIL (rank " << rank << "): " << what << "\n";
}

bool built(const std::string& backend) {
  for (const std::string& b : dist::built_backends())
    if (b == backend) return true;
  return false;
}

// Values whose sums over a few ranks are exact in float (small multiples of 1/4), so the expected
// results are exact whatever order a backend adds them in.
float value_at(int rank, size_t i) { return static_cast<float>((rank + 1) * 0.25 + static_cast<double>(i % 97)); }

int check_comm(const std::string& backend) {
  if (!built(backend)) {
    std::cout << "SKIP: the " << backend << " backend is not built\n";
    return kSkip;
  }
  const bool gpu = backend == "nccl";
  if (gpu && !cuda_available()) {
    std::cout << "SKIP: nccl needs a CUDA device, and none is available\n";
    return kSkip;
  }
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(backend, gpu);
  const int rank = comm->rank(), size = comm->size();
  expect(comm->backend() == backend, "backend() names " + comm->backend(), rank);
  expect(rank >= 0 && rank < size, "rank within [0, size)", rank);
  expect(comm->local_rank() >= 0 && comm->local_rank() < comm->local_size() && comm->local_size() <= size,
         "local rank within [0, local size)", rank);
  int mpi_size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
  expect(size == mpi_size, "size() equals MPI_COMM_WORLD's", rank);

  // An odd length: no backend may rely on a multiple of anything.
  const size_t n = 100003;
  std::vector<float> mine(n);
  for (size_t i = 0; i < n; ++i) mine[i] = value_at(rank, i);
  auto on_backend = [&](const std::vector<float>& host, auto&& op) {
    // nccl reduces GPU memory: the buffer goes there and back through a glimpse tensor.
    Tensor t = Tensor::from_vector(host, {static_cast<int64_t>(host.size())}, gpu ? Device::CUDA : Device::CPU);
    op(t.data<float>(), host.size());
    return t.to_vector();
  };

  const std::vector<float> sum = on_backend(mine, [&](float* p, size_t c) { comm->all_reduce_sum(p, c); });
  const std::vector<float> avg = on_backend(mine, [&](float* p, size_t c) { comm->all_reduce_average(p, c); });
  bool sum_ok = true, avg_ok = true;
  for (size_t i = 0; i < n; ++i) {
    double expected = 0;
    for (int r = 0; r < size; ++r) expected += value_at(r, i);
    sum_ok = sum_ok && sum[i] == static_cast<float>(expected);
    avg_ok = avg_ok && std::fabs(avg[i] - expected / size) <= 1e-6 * std::fabs(expected / size);
  }
  expect(sum_ok, "all_reduce_sum equals the sum of every rank's values", rank);
  expect(avg_ok, "all_reduce_average equals their mean", rank);

  // Parity for nccl: the same sum through MPI on the host, bit for bit (with two ranks a sum has
  // one order; with more the orders may differ, and the exact inputs above still make it exact).
  if (gpu) {
    std::vector<float> host = mine;
    MPI_Allreduce(MPI_IN_PLACE, host.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    expect(host == sum, "nccl's all-reduce sum equals MPI's", rank);
  }

  const int root = size - 1;
  const std::vector<float> got = on_backend(mine, [&](float* p, size_t c) { comm->broadcast(p, c, root); });
  bool bcast_ok = true;
  for (size_t i = 0; i < n; ++i) bcast_ok = bcast_ok && got[i] == value_at(root, i);
  expect(bcast_ok, "broadcast delivers the root's buffer", rank);

  std::vector<double> counts{static_cast<double>(rank), 1.0, 1e15 + rank};
  comm->all_reduce_sum_host(counts.data(), counts.size());
  expect(counts[0] == size * (size - 1) / 2.0 && counts[1] == size &&
             counts[2] == size * 1e15 + size * (size - 1) / 2.0,
         "all_reduce_sum_host sums doubles exactly", rank);
  char text[32] = {};
  if (rank == root) std::snprintf(text, sizeof text, "from rank %d", root);
  comm->broadcast_host(text, sizeof text, root);
  expect(std::string(text) == "from rank " + std::to_string(root), "broadcast_host delivers the root's bytes", rank);

  // gather_host: each rank's block, in rank order, on the root only (the other ranks' recv stays
  // untouched: it is filled with a sentinel here).
  std::vector<float> gathered(static_cast<size_t>(size) * n, -7.0f);
  comm->gather_host(mine.data(), n, gathered.data(), root);
  bool gather_ok = true;
  for (int r = 0; r < size; ++r)
    for (size_t i = 0; i < n; ++i)
      gather_ok = gather_ok && gathered[static_cast<size_t>(r) * n + i] == (rank == root ? value_at(r, i) : -7.0f);
  expect(gather_ok, "gather_host puts each rank's block in rank order on the root only", rank);
  comm->barrier();

  // The verdict of every rank, summed with plain MPI.
  int bad = failures > 0, total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::cout << (total == 0 ? "PASS" : "FAIL") << ": " << backend << " communicator on " << size << " ranks\n";
  return total == 0 ? 0 : 1;
}

int check_training(const std::string& data_dir, const std::string& out_dir, int steps) {
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator("mpi");
  const int rank = comm->rank(), size = comm->size();

  models::TrainData data;
  data.train = read_coco_split(data_dir, "train");
  data.val = read_coco_split(data_dir, "val");
  data.tokenizer = build_caption_tokenizer(data.train, 64, 24);
  models::CaptionerConfig config = models::CaptionerConfig::tiny_shapes();
  config.vocab_size = static_cast<int64_t>(data.tokenizer.vocabulary_size());
  config.max_caption_len = 24;
  config.image_size = 64;
  config.units = config.embedding_dim = 16;
  // Each rank starts from DIFFERENT weights (seed + rank): only the broadcast from rank 0 at the
  // start can make them agree.
  models::Captioner model(config, 11 + rank);
  models::TrainOptions opt;
  opt.out_dir = out_dir;
  opt.epochs = 1;
  opt.batch_size = 2 * size;
  opt.seed = 3;
  opt.max_steps = steps;
  opt.captions_per_image = 5;
  opt.progress_bar = false;
  opt.sample_captions = 0;
  opt.comm = comm.get();
  const models::TrainResult result = models::train_captioner(model, data, opt);
  expect(static_cast<int>(result.step_losses.size()) == steps, "ran the requested steps", rank);

  // The digest of everything a checkpoint holds, and each rank's gathered on rank 0 by MPI itself.
  std::vector<Tensor*> state;
  for (const nn::NamedTensor& t : model.named_tensors()) state.push_back(t.tensor);
  const std::string digest = dist::state_digest(state, {result.global_step});
  std::vector<char> all(16 * static_cast<size_t>(size));
  MPI_Gather(digest.data(), 16, MPI_CHAR, all.data(), 16, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      const std::string d(all.data() + 16 * r, 16);
      std::cout << "rank " << r << ": state digest " << d << " after " << steps << " steps\n";
      expect(d == digest, "rank " + std::to_string(r) + "'s state equals rank 0's", rank);
    }
  }

  // The safety net itself: one weight nudged on the last rank must make every rank refuse.
  dist::DataParallel sync(*comm);
  if (rank == size - 1) {
    Tensor& w = model.output_dense->kernel;
    w.copy_(add_scalar(w.detach(), 1e-3));
  }
  bool refused = false;
  try {
    sync.check_ranks_agree(state, {result.global_step}, "in dist_check");
  } catch (const std::runtime_error& e) {
    refused = std::string(e.what()).find("differ") != std::string::npos;
  }
  expect(refused == (size > 1), "check_ranks_agree refuses ranks whose weights differ", rank);

  int bad = failures > 0, total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::cout << (total == 0 ? "PASS" : "FAIL") << ": identical state on " << size << " ranks after " << steps
              << " steps; a divergent rank is refused\n";
  return total == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "comm" && argc == 3) return check_comm(argv[2]);
    if (mode == "train" && argc == 5) return check_training(argv[2], argv[3], std::atoi(argv[4]));
    std::cerr << "usage: dist_check comm BACKEND | dist_check train DATA_DIR OUT STEPS\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    // The other ranks may be inside a collective call: end them too.
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
