// A small seeded random generator for parameter initialisation and data shuffling.
//
// splitmix64 drawn serially: the same seed gives the same numbers on every machine, compiler and
// thread count (std::uniform_real_distribution and friends are implementation-defined, so they are
// not used). Dropout masks use the counter-based hash in tensor/counter_rng.h instead, so that
// every device produces the same mask.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace glimpse {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : state_(seed) {}
  uint64_t next_u64();
  double uniform();                       // [0, 1), 53 random bits
  double uniform(double lo, double hi);
  double normal();                        // standard normal (Box-Muller, one value per call)
  uint64_t below(uint64_t n);             // uniform integer in [0, n)
  uint64_t state() const { return state_; }
  void set_state(uint64_t state) { state_ = state; }

 private:
  uint64_t state_;
};

Tensor random_uniform(const Shape& shape, double lo, double hi, Generator& gen,
                      DType dtype = DType::F32, Device device = Device::CPU);
Tensor random_normal(const Shape& shape, double mean, double stddev, Generator& gen,
                     DType dtype = DType::F32, Device device = Device::CPU);

}  // namespace glimpse
