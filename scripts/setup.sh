#!/usr/bin/env bash
# One-step set-up and build on Debian 12 (or Ubuntu 24.04): installs what is missing, configures, builds.
#   scripts/setup.sh                 # release build in ./build (CUDA backend too when nvcc is on PATH)
#   TD_CUDA_ARCHS=90a scripts/setup.sh   # build the CUDA backend for one arch only (faster)
#   TD_CUDA=OFF scripts/setup.sh         # CPU-only build
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev libzip-dev libopenblas-dev
      libpng-dev libjpeg-dev libsentencepiece-dev sentencepiece libgtest-dev libbenchmark-dev
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# nvcc is often installed but not on PATH.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DTD_CUDA="${TD_CUDA:-AUTO}" ${TD_CUDA_ARCHS:+-DTD_CUDA_ARCHS="$TD_CUDA_ARCHS"} ${TD_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built $BUILD_DIR/bin/turbodiff"
