#!/usr/bin/env bash
# Regenerates the README's sample grids (docs/img/samples-NAME.png, 64 samples of the shipped MNIST
# model, seed 1) and the quality-gate evaluation behind the README's FID figures (1000 DDIM-50
# samples, seeds 1 and 2). Sample k draws from its own stream (diffusion.ImageRNGs(seed, k)), so the
# figures do not depend on the batch size.   bash scripts/regen_sample_grids.sh [OUT_LOG_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
log=${1:-runs/regen-samples}
mkdir -p "$log"
go build -o bin/diffinv ./cmd/diffinv
ckpt=models/mnist/model.safetensors
for spec in ddpm:1000 ddim:50 pc:500 vp-em:1000 ald:100 ode:50; do
  name=${spec%%:*} steps=${spec##*:}
  extra=()
  if [[ $name == ald ]]; then extra=(--set sample.langevin_steps=10); fi
  ./bin/diffinv sample --checkpoint "$ckpt" --sampler "$name" --steps "$steps" --n 64 --seed 1 \
    "${extra[@]}" --out "docs/img/samples-$name.png" 2>"$log/sample-$name.err"
  rm -f "docs/img/samples-$name.safetensors" # the raw samples beside the grid: not kept in the repository
done
for seed in 1 2; do
  ./bin/diffinv eval samples --checkpoint "$ckpt" --n 1000 --sampler ddim --steps 50 --seed "$seed" \
    >"$log/eval-seed$seed.txt" 2>"$log/eval-seed$seed.err"
  cat "$log/eval-seed$seed.txt"
done
