# Finds what libdl builds against: Eigen, OpenMP, zlib, libspng and libjpeg (images), and optionally CUDA
# (with cuDNN and cuBLAS), GoogleTest, Google Benchmark and libtorch (the reference in tests/bench).
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(OpenMP REQUIRED)
find_package(ZLIB REQUIRED)
find_package(Threads REQUIRED)
# Images (Note [image decoders] in libdl/dl/data/image_io.h): PNG through libspng, JPEG through
# libjpeg-turbo (Debian's libspng-dev and libjpeg62-turbo-dev), linked by path so that the installed
# package config needs nothing more.
find_path(SPNG_INCLUDE_DIR spng.h REQUIRED)
find_library(SPNG_LIBRARY spng REQUIRED)
find_path(JPEG_INCLUDE_DIR jpeglib.h REQUIRED)
find_library(JPEG_LIBRARY NAMES jpeg REQUIRED)

# oneDNN: the optional CPU convolution engine (Debian's libdnnl-dev).
set(DL_ONEDNN "AUTO" CACHE STRING "Build the oneDNN CPU convolution engine: AUTO, ON or OFF")
set(DL_HAVE_ONEDNN OFF)
if(NOT DL_ONEDNN STREQUAL "OFF")
  # Debian's dnnl-config.cmake asks for OpenCL (its GPU runtime) with REQUIRED, which would stop the
  # configuration on a machine without the OpenCL headers: look first, and go without oneDNN then.
  find_package(OpenCL QUIET)
  if(OpenCL_FOUND)
    find_package(dnnl CONFIG QUIET)
  endif()
  if(dnnl_FOUND)
    set(DL_HAVE_ONEDNN ON)
  elseif(DL_ONEDNN STREQUAL "ON")
    message(FATAL_ERROR "DL_ONEDNN=ON but oneDNN (libdnnl-dev) was not found")
  endif()
endif()

# OpenBLAS (OpenMP build, Debian's libopenblas-openmp-dev): Eigen hands its matrix products to it
# (EIGEN_USE_BLAS). The OpenMP build runs single-threaded inside the backend's parallel regions and
# on the backend's threads otherwise.
set(DL_BLAS "AUTO" CACHE STRING "Hand Eigen's matrix products to OpenBLAS: AUTO, ON or OFF")
set(DL_HAVE_BLAS OFF)
if(NOT DL_BLAS STREQUAL "OFF")
  find_library(OPENBLAS_LIBRARY NAMES openblas PATHS /usr/lib/x86_64-linux-gnu/openblas-openmp NO_DEFAULT_PATH)
  if(OPENBLAS_LIBRARY)
    set(DL_HAVE_BLAS ON)
  elseif(DL_BLAS STREQUAL "ON")
    message(FATAL_ERROR "DL_BLAS=ON but the OpenMP build of OpenBLAS (libopenblas-openmp-dev) was not found")
  endif()
endif()

set(DL_HAVE_CUDA OFF)
if(NOT DL_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include/x86_64-linux-gnu)
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  if(CUDAToolkit_FOUND AND CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    set(DL_HAVE_CUDA ON)
    # Architectures: every GPU generation cuDNN 9 serves, and Volta (sm_70, the V100s of the seed's
    # cloud) where the toolkit still compiles for it (CUDA 12; CUDA 13 dropped it). CI builds one.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(DL_CUDA_ARCHS 75 80 86 89 90)
      if(CUDAToolkit_VERSION VERSION_LESS 13)
        list(PREPEND DL_CUDA_ARCHS 70)
      endif()
      set(CMAKE_CUDA_ARCHITECTURES "${DL_CUDA_ARCHS}" CACHE STRING "CUDA architectures to build for")
    endif()
    if(NOT CMAKE_CUDA_COMPILER)
      set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}")
    endif()
    enable_language(CUDA)
    # CMake 3.25 does not know that nvcc 12+ takes C++20: tell it (later CMake versions know).
    if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)

  elseif(DL_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DL_CUDA=ON but the CUDA toolkit (${CUDAToolkit_FOUND}) or cuDNN "
                        "(${CUDNN_INCLUDE_DIR}, ${CUDNN_LIBRARY}) was not found")
  endif()
endif()

# Data-parallel training (libdl/dist): MPI for processes, machines and CPU tensors (Debian's OpenMPI,
# libopenmpi-dev; its C API only), NCCL for CUDA tensors (nccl.h and libnccl in the CUDA toolkit's
# folder). Without MPI a world of one works and asking for more says what is missing.
set(DL_MPI "AUTO" CACHE STRING "Build the MPI process group: AUTO, ON or OFF")
set(DL_HAVE_MPI OFF)
if(NOT DL_MPI STREQUAL "OFF")
  # The C API from C++ (the project has no C language): the CXX component without the C++ bindings.
  set(MPI_CXX_SKIP_MPICXX ON)
  find_package(MPI QUIET COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(DL_HAVE_MPI ON)
  elseif(DL_MPI STREQUAL "ON")
    message(FATAL_ERROR "DL_MPI=ON but MPI (libopenmpi-dev) was not found")
  endif()
endif()
set(DL_NCCL "AUTO" CACHE STRING "Build the NCCL collectives of CUDA tensors (with CUDA and MPI): AUTO, ON or OFF")
set(DL_HAVE_NCCL OFF)
if(DL_HAVE_CUDA AND DL_HAVE_MPI AND NOT DL_NCCL STREQUAL "OFF")
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include/x86_64-linux-gnu)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(DL_HAVE_NCCL ON)
  endif()
endif()
if(DL_NCCL STREQUAL "ON" AND NOT DL_HAVE_NCCL)
  message(FATAL_ERROR "DL_NCCL=ON but CUDA (${DL_HAVE_CUDA}), MPI (${DL_HAVE_MPI}) or NCCL (nccl.h, libnccl) was not found")
endif()

set(DL_HAVE_TORCH OFF)
if(DL_BUILD_TESTS OR DL_BUILD_BENCH)
  find_package(Torch QUIET CONFIG)
  if(Torch_FOUND)
    set(DL_HAVE_TORCH ON)
  endif()
endif()
