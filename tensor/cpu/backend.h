// The CPU backend's kernel tables (OpenBLAS/Eigen GEMM + loops on tensor/parallel.h's pool). tensor/kernels.cpp hands these out
// as glimpse::kernels_f32(Device::CPU) etc.; tests and benchmarks may also call them directly.
#pragma once
#include "tensor/kernels.h"

namespace glimpse::cpu {

const DeviceApi& device_api();
const Kernels<float>& kernels_f32();
const Kernels<double>& kernels_f64();

}  // namespace glimpse::cpu
