#!/usr/bin/env bash
# Runs the whole test suite (GPU tests skip themselves where no GPU exists).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
