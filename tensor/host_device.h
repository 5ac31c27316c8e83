// Marks a function as callable from host and device code when nvcc compiles the file, and as plain
// C++ otherwise, so that one definition (an element-wise op's formula, a layout's index arithmetic)
// serves the CPU and the CUDA backend alike.
#pragma once

#if defined(__CUDACC__)
#define GLIMPSE_HOST_DEVICE __host__ __device__
#else
#define GLIMPSE_HOST_DEVICE
#endif
