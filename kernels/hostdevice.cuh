// DL_HD marks index and numeric helpers compiled both for the host and, by nvcc, for the device,
// so that the CPU backend, the CUDA kernels and their emulation share one copy of the math.
#pragma once
#if defined(__CUDACC__)
#define DL_HD __host__ __device__ inline
#else
#define DL_HD inline
#endif
