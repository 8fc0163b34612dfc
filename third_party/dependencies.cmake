# Finds what libdl builds against: Eigen, OpenMP, zlib, stb (header only), and optionally CUDA
# (with cuDNN and cuBLAS), GoogleTest, Google Benchmark and libtorch (the reference in tests/bench).
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(OpenMP REQUIRED)
find_package(ZLIB REQUIRED)
find_path(STB_INCLUDE_DIR stb_image.h PATHS /usr/include/stb /usr/include)

set(DL_HAVE_CUDA OFF)
if(NOT DL_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include/x86_64-linux-gnu)
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  if(CUDAToolkit_FOUND AND CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    set(DL_HAVE_CUDA ON)
  elseif(DL_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DL_CUDA=ON but the CUDA toolkit (${CUDAToolkit_FOUND}) or cuDNN "
                        "(${CUDNN_INCLUDE_DIR}, ${CUDNN_LIBRARY}) was not found")
  endif()
endif()

set(DL_HAVE_TORCH OFF)
if(DL_BUILD_TESTS OR DL_BUILD_BENCH)
  find_package(Torch QUIET CONFIG)
  if(Torch_FOUND)
    set(DL_HAVE_TORCH ON)
  endif()
endif()
