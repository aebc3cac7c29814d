source scripts/device/env.sh
timeout 100 $B/turbodiff bench vae --convs --iters 20 2>&1 | tail -10
for rep in 1 2; do
for cfg in "" "TD_VAE_WGMMA_CAUSAL=0" "TD_VAE_FUSED_NORM=0" "TD_VAE_WGMMA=0"; do
  echo "== [$cfg] $(env $cfg timeout 60 $B/turbodiff bench vae --random-weights --no-encode --iters 5 2>&1 | grep decode)"
done; done
