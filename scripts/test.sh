#!/usr/bin/env bash
# Runs the test suite, in two separable parts:
#   scripts/test.sh               the fast default: the format check, a Release build (with the CUDA backend when the toolkit
#                                 is found), all its tests (unit, gradcheck, libtorch parity, kernels,
#                                 e2e; gpu tests skip without a GPU), then an outside project built
#                                 against the installed package
#   scripts/test.sh --sanitizers  the format check, a build without CUDA (-DDL_CUDA=OFF) under AddressSanitizer +
#                                 UndefinedBehaviorSanitizer and its tests (the slow e2e and libtorch ones
#                                 aside), then the fuzz targets of fuzz/ built with clang, a fixed number
#                                 of inputs each
#   scripts/test.sh --all         both (what CI runs)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="$(nproc)"
fast=1 sanitizers=0
case "${1:-}" in
  "") ;;
  --sanitizers) fast=0 sanitizers=1 ;;
  --all) sanitizers=1 ;;
  *) echo "usage: scripts/test.sh [--sanitizers | --all]  (got '$1')" >&2; exit 2 ;;
esac

# ctest, then a check that nothing skipped but the GPU tests (on a machine without a GPU): a skipped
# test has checked nothing, so it must not pass as if it had.
run_ctest() {
  local dir="$1"
  shift
  ctest --test-dir "$dir" --output-on-failure "$@" | tee "$dir/ctest-output.log"
  local skipped
  skipped="$(grep -E '\(Skipped\)' "$dir/ctest-output.log" | grep -vE 'test_gpu_parity|test_custom_op_gpu' || true)"
  if [[ -n "$skipped" ]]; then
    echo "test.sh: these tests skipped; only the GPU tests may skip:" >&2
    echo "$skipped" >&2
    exit 1
  fi
}

# The repo's .clang-format, on every C++ and CUDA file (scripts/format.sh rewrites them).
scripts/format.sh --check

if ((fast)); then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${DL_CMAKE_ARGS:-}
  cmake --build build --parallel "$jobs"
  run_ctest build --timeout 900

  # An outside project builds and runs against the installed package. A shared libdl (the default)
  # serves a CPU-only machine: the package is found with CUDA, oneDNN, MPI, Eigen and zlib hidden from
  # CMake and no CUDA compiler on PATH, and the program loads no CUDA library (cuDNN, cuBLAS and NCCL
  # are opened only when a GPU is used, the runtime is inside libdl).
  rm -rf build/install-test build/consumer
  cmake --install build --prefix build/install-test >/dev/null
  consumer_args=()
  if grep -q '^BUILD_SHARED_LIBS:BOOL=ON' build/CMakeCache.txt; then
    for p in CUDAToolkit CUDA dnnl MPI Eigen3 ZLIB; do consumer_args+=("-DCMAKE_DISABLE_FIND_PACKAGE_$p=ON"); done
  fi
  cpu_path="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v cuda | paste -sd: -)"
  PATH="$cpu_path" cmake -S tests/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$root/build/install-test" \
    "${consumer_args[@]}" >/dev/null
  PATH="$cpu_path" cmake --build build/consumer
  if ((${#consumer_args[@]})) && ldd build/consumer/consumer | grep -E 'libcuda|libcudart|libcudnn|libcublas|libnccl'; then
    echo "test.sh: the CPU-only consumer of the shared libdl loads a CUDA library (above)" >&2
    exit 1
  fi
  build/consumer/consumer
fi

if ((sanitizers)); then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDL_SANITIZE=address,undefined \
        -DDL_BUILD_BENCH=OFF -DDL_BUILD_EXAMPLES=OFF -DDL_NATIVE=OFF ${DL_CMAKE_ARGS:-} -DDL_CUDA=OFF -DDL_WERROR=OFF \
        -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON  # the libtorch suites do not run here: do not build them
  cmake --build build-asan --parallel "$jobs"
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
  run_ctest build-asan --timeout 900 -LE "torch|e2e"

  # The libFuzzer targets of fuzz/ (clang, ASan + UBSan): each reader of files from strangers runs its
  # seed corpus and a fixed number of mutated inputs (fuzz/README.md).
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDL_FUZZ=ON \
        -DDL_SANITIZE=address,undefined -DDL_CUDA=OFF -DDL_ONEDNN=OFF -DDL_BUILD_TESTS=OFF -DDL_BUILD_BENCH=OFF -DBUILD_SHARED_LIBS=OFF \
        -DDL_BUILD_EXAMPLES=OFF -DDL_NATIVE=OFF
  cmake --build build-fuzz --parallel "$jobs"
  run_ctest build-fuzz -L fuzz
fi
echo "test.sh: passed"
