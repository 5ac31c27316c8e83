// Counter-based random numbers shared by the CPU and CUDA backends (dropout masks).
//
// A counter-based generator has no state to carry between calls: the i-th number of a stream is a
// pure function of (seed, i). That makes every element independent of how the work is split across
// threads or GPU blocks, so the CPU and CUDA kernels produce bit-identical masks for the same seed.
// The mixing is SplitMix64 (Steele, Lea, Flood 2014): the stream keyed by `seed` is the SplitMix64
// sequence whose starting state is mix64(seed), and element `counter` is its (counter + 1)-th output.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define GLIMPSE_HOST_DEVICE __host__ __device__
#else
#define GLIMPSE_HOST_DEVICE
#endif

namespace glimpse {

// SplitMix64's finaliser: a bijection on 64-bit words with good avalanche.
GLIMPSE_HOST_DEVICE inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

GLIMPSE_HOST_DEVICE inline uint64_t counter_hash(uint64_t seed, uint64_t counter) {
  constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;  // SplitMix64's state increment
  return splitmix64_mix(splitmix64_mix(seed) + (counter + 1) * kGoldenGamma);
}

// Uniform in [0, 1): the top 24 bits scaled by 2^-24, exact in float on every device.
GLIMPSE_HOST_DEVICE inline float counter_uniform(uint64_t seed, uint64_t counter) {
  // Through int32 (the value is below 2^24): a signed conversion is one instruction on x86.
  const auto top_bits = static_cast<int32_t>(counter_hash(seed, counter) >> 40);
  return static_cast<float>(top_bits) * (1.0f / 16777216.0f);
}

}  // namespace glimpse
