#!/usr/bin/env bash
# Packs the device build's binaries for the lent GPU machine (carry build-dev/pack and .devcarry; env.sh unpacks).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p build-dev/pack
tar -czf build-dev/pack/bin.tgz -C build-dev/bin turbodiff td_tests
ls -la build-dev/pack/bin.tgz
