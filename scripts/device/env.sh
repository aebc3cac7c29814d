# Sourced by the scripts in this folder on the lent GPU machine: the binaries ($B), the shared libraries that
# machine lacks (.devcarry/lib), the source path compiled into the tests (they find their fixtures through it), and
# the log folder ($OUT).
B=${B:-build-dev/bin}
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:${LD_LIBRARY_PATH:-}
# Only a missing path or an old link is replaced: on a machine where /work/main is the real checkout (this one), ln
# would otherwise put a link inside it.
mkdir -p /work && { [ -L /work/main ] || [ ! -e /work/main ]; } && ln -sfn "$PWD" /work/main
OUT=${OUT:-/tmp/td_out}
mkdir -p "$OUT"
# Binaries packed by scripts/device/pack.sh (the carry limit is 64 MiB; the fatbins compress ~4x), unpacked where the
# build puts them (tests that run the CLI look for it there).
if [ -f build-dev/pack/bin.tgz ] && [ "$B" = build-dev/bin ]; then
  mkdir -p build-dev/bin && tar -xzf build-dev/pack/bin.tgz -C build-dev/bin
fi
