// The out-of-tree consumer: built against an installed glimpse (tests/consumer/run.sh). It
// touches each layer — a tensor op with its gradient, a layer, a checkpoint written and read back —
// so that a header or library missing from the install fails to compile or link here.
#include <glimpse/glimpse.h>

#include <cmath>
#include <cstdio>
#include <iostream>

using namespace glimpse;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer SCRATCH_FILE.h5\n";
    return 2;
  }
  // d/dx sum(x^2 + x) = 2x + 1
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}).set_requires_grad();
  sum(add(mul(x, x), x)).backward();
  const std::vector<float> g = x.grad().to_vector();
  if (g != std::vector<float>{3, 5, 7}) {
    std::cerr << "wrong gradient\n";
    return 1;
  }
  // A Dense layer saved to a checkpoint and loaded into a fresh one.
  Generator gen(1);
  nn::Dense a("dense", 4, 2, gen), b("dense", 4, 2, gen);
  save_checkpoint(argv[1], a.named_tensors(), "none", {}, 0, CheckpointContents{});
  load_checkpoint_tensors(argv[1], b.named_tensors());
  if (a.kernel.to_vector() != b.kernel.to_vector()) {
    std::cerr << "the checkpoint did not round-trip\n";
    return 1;
  }
  // The CUDA backend registers itself from a static initializer; glimpse::glimpse must have
  // linked it whole, or this program would silently have no GPU support.
  if (backend_linked(Device::CUDA) != bool(CONSUMER_EXPECTS_CUDA)) {
    std::cerr << "the CUDA backend is " << (backend_linked(Device::CUDA) ? "" : "not ")
              << "linked in, but the installed glimpse was built "
              << (CONSUMER_EXPECTS_CUDA ? "with" : "without") << " it\n";
    return 1;
  }
  std::cout << "consumer: gradient, layer and checkpoint OK; CUDA backend "
            << (CONSUMER_EXPECTS_CUDA ? "linked" : "not built") << "\n";
  return 0;
}
