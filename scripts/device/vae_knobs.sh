#!/usr/bin/env bash
# The decoder's memory knobs on the lent GPU: 81x480x832 decode for several --chunk / --tail-frames settings,
# alternated twice (docs/perf.md, session 5).
set -uo pipefail
source scripts/device/env.sh
for round in 1 2; do
for cfg in "--chunk 1 --tail-frames 2" "--chunk 2 --tail-frames 2" "--chunk 3 --tail-frames 2" "--chunk 1 --tail-frames 4" "--chunk 2 --tail-frames 4" "--chunk 1 --tail-frames 1"; do
  echo "== $cfg"; timeout 100 $B/turbodiff bench vae --random-weights --no-encode --iters 5 $cfg 2>&1 | grep -E "decode"
done; done
