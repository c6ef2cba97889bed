#!/usr/bin/env bash
# Seconds per image of every diffusion solver and baseline on the shipped MNIST model:
# sr4 (σ_y = 0.05) on 4 MNIST test digits solved as one batch, default options (DPS, MCG and
# projection at 1000 steps). Prints a markdown table; used for BENCHMARKS.md.
#   bash scripts/bench_solvers.sh [checkpoint] [n]
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:-models/mnist/model.safetensors}
n=${2:-4}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o bin/diffinv ./cmd/diffinv
echo "| method | steps | network calls per step | s/image | PSNR dB | baseline A†y PSNR dB |"
echo "|---|---|---|---|---|---|"
# Default step counts (inverse/solve): the full schedule for the first three.
# PnP-DM's "steps" are its 100 Gibbs iterations, each a reverse run of 23–63 network calls.
declare -A steps=([dps]=1000 [mcg]=1000 [projection]=1000 [ddnm]=100 [ddnm+]=100 [ddrm]=20 [pigdm]=100 [moment-matching]=100
  [diffpir]=100 [red-diff]=1000 [pnp-dm]=100 [daps]=200)
declare -A calls=([dps]="1 forward + 1 VJP" [mcg]="1 forward + 1 VJP" [projection]="1 forward" [ddnm]="1 forward"
  [ddnm+]="1 forward" [ddrm]="1 forward" [pigdm]="1 forward + 1 VJP" [moment-matching]="1 forward + 5 VJPs (CG)"
  [diffpir]="1 forward" [red-diff]="1 forward" [pnp-dm]="23–63 forward (2936 in all)" [daps]="5 forward (ODE) + 100 operator VJPs (Langevin)")
for m in dps mcg projection ddnm ddnm+ ddrm pigdm moment-matching diffpir red-diff pnp-dm daps; do
  ./bin/diffinv solve --checkpoint "$ckpt" --task sr4 --method "$m" --dataset mnist-test --n "$n" \
    --set solver.batch_size="$n" --out "$out/$m" >/dev/null 2>&1 || { echo "| $m | failed | | | | |"; continue; }
  python3 - "$out/$m/metrics.json" "$m" "${steps[$m]}" "${calls[$m]}" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {m['seconds_per_image']:.2f} | {m['mean']['psnr']:.2f} | {m['mean'].get('baseline_psnr', float('nan')):.2f} |")
PY
done
