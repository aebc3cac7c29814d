#!/usr/bin/env bash
# A/B of the VAE conv paths on the lent GPU: the big convs alone (cuDNN vs our wgmma kernel), then the 81x480x832
# decode with each switch (conv3d.cu: TD_VAE_WGMMA, TD_VAE_WGMMA_CAUSAL, TD_VAE_FUSED_NORM), alternated twice.
set -uo pipefail
source "$(dirname "$0")/env.sh"
timeout 100 $B/turbodiff bench vae --convs --iters 20 2>&1 | tail -10
for rep in 1 2; do
  for cfg in "" "TD_VAE_WGMMA_CAUSAL=0" "TD_VAE_FUSED_NORM=0" "TD_VAE_WGMMA=0"; do
    echo "== [$cfg] $(env $cfg timeout 60 $B/turbodiff bench vae --random-weights --no-encode --iters 5 2>&1 | grep decode)"
  done
done
