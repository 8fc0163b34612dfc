// Process-wide switches of the GPU arithmetic: TF32 tensor cores for float32 convolution and GEMM, and
// deterministic algorithm choice. Both exist in every build (a build without CUDA just holds the flags)
// and may be changed at any time; an op reads them when it runs, and the cuDNN algorithm cache keys on
// them (Note [cudnn algorithm cache] in backend/cuda/cudnn_conv.cpp), so a change never reuses a choice
// made under the other setting.
#pragma once

namespace dl::cuda {

// TF32 tensor-core math (10-bit mantissa products, float32 accumulation) for float32 convolutions
// (cuDNN) and linear layers (cuBLAS) on GPUs of compute capability 8.0 and newer. On by default, as
// PyTorch does for cuDNN convolutions; DL_ALLOW_TF32=0 in the environment (read at the first use)
// turns it off. It governs Precision::kFp32 only: kTf32 (dl/core/precision.h) uses TF32 whatever this
// says, and kBf16 / kFp16 compute in their own formats.
void set_allow_tf32(bool on);
bool allow_tf32();

}  // namespace dl::cuda

namespace dl {

// Deterministic algorithms: when on, CUDA convolutions use only cuDNN algorithms whose results are
// bitwise the same from run to run (cudnnDeterminism_t CUDNN_DETERMINISTIC), timed or heuristic search
// alike; a geometry with no such algorithm is an error. Off by default (the fastest algorithm wins,
// some of which accumulate with atomics). The CPU backend is deterministic for a given thread count
// either way.
void set_deterministic(bool on);
bool deterministic();

}  // namespace dl
