#!/usr/bin/env bash
# Short libFuzzer runs of the untrusted-input parsers (safetensors header, the .pth unpickler, the whole .pth path).
#   scripts/fuzz.sh                  # build in build-fuzz (clang, ASan+UBSan), run each target FUZZ_SECONDS (30) s
#   FUZZ_SECONDS=300 scripts/fuzz.sh # longer local run
# Seeds come from tests/fixtures/io. Exits non-zero (and keeps the crashing input in build-fuzz/artifacts/) when a
# target finds a crash, a leak, a sanitizer report or an exception other than td::Error.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-30}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
CXX=${FUZZ_CXX:-clang++}
CC=${FUZZ_CC:-clang}

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
install() {
  echo "fuzz: installing $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}
command -v "$CXX" >/dev/null || install clang
# The libFuzzer runtime ships separately from clang on Debian 12 / Ubuntu 24.04 (libclang-rt-<major>-dev).
probe=$(mktemp -d)
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
if ! "$CXX" -fsanitize=fuzzer "$probe/p.cpp" -o "$probe/p" 2>/dev/null; then
  major=$("$CXX" -dumpversion | cut -d. -f1)
  install "libclang-rt-${major}-dev"
fi
rm -rf "$probe"

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_COMPILER="$CC" -DTD_CUDA=OFF -DTD_FFMPEG=OFF -DTD_BUILD_TESTS=OFF -DTD_BUILD_FUZZERS=ON >/dev/null
cmake --build "$BUILD" --target fuzz_safetensors_header fuzz_unpickler fuzz_pth_zip -j "$(nproc)"

FIX=tests/fixtures/io
mkdir -p "$BUILD/artifacts"
seed() {  # seed <corpus dir> <files...>: a fresh working corpus per run, seeded from the committed fixtures
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"; cp "$@" "$dir"/
}
seed "$BUILD/corpus/safetensors" "$FIX"/*.safetensors
seed "$BUILD/corpus/unpickler" "$FIX"/pkl/*.pkl
seed "$BUILD/corpus/pth" "$FIX"/*.pth

status=0
run() {  # run <target> <corpus> [extra libFuzzer flags]
  local t=$1 c=$2; shift 2
  echo "fuzz: $t for ${SECS}s"
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "$BUILD/bin/$t" "$c" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$BUILD/artifacts/$t-" -print_final_stats=1 "$@" >"$BUILD/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; last lines of $BUILD/$t.log:"
    tail -40 "$BUILD/$t.log"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$BUILD/$t.log" | tr '\n' ' '
    echo
  fi
}
run fuzz_safetensors_header "$BUILD/corpus/safetensors"
run fuzz_unpickler "$BUILD/corpus/unpickler" -dict=tests/fuzz/pickle.dict
run fuzz_pth_zip "$BUILD/corpus/pth"
exit $status
