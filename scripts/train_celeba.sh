#!/usr/bin/env bash
# Trains the CelebA 64 face model (issue 17) with configs/celeba64.yaml's network (10.7 M
# parameters: 64 channels, multipliers [1, 2, 2, 2], two residual blocks per level, attention at
# 16×16, dropout 0.1) on the official train split, in the bf16 engine:
#
#   bash scripts/train_celeba.sh [OUT [TRAIN FLAGS...]]    # OUT defaults to runs/celeba-recipe
#
# One 12,000-step run (batch 32, lr 2e-4 after a 1000-step warm-up, cosine decay to 0, EMA 0.9995;
# about 3 s a step on 2 cores, 10 hours in all) taken in four pieces of 3000 steps with --stop-at,
# each about 2.5 h, so that a piece fits a working session. Interrupt it at any time: run it again
# and it resumes from the last checkpoint (bit-identical to an uninterrupted run) and skips the
# finished pieces. At the end of each piece its EMA weights are exported to
# OUT/stage-N.safetensors (a model file: `diffinv sample`, `eval samples` and `solve` take it).
# STOP=N stops after piece N (1–4).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pieces.sh
out=${1:-runs/celeba-recipe}
shift || true
extra=("$@")
bin=./bin/diffinv
stop=${STOP:-4}
go build -o "$bin" ./cmd/diffinv

total=12000
piece=3000
common=(--config configs/celeba64.yaml --grid-n 16 --grid-steps 25
  --set train.steps=$total --set train.batch_size=32 --set train.lr=0.0002 --set train.warmup_steps=1000
  --set train.lr_decay=cosine --set train.ema_decay=0.9995 --set train.checkpoint_every=250
  --set train.keep_checkpoints=2 --set train.sample_every=1000 --set train.log_every=25)

# KEEP (models/celeba64-phase1/run; KEEP= turns it off): where each finished piece's log and loss curve
# are copied, to commit (scripts/lib/pieces.sh: runs/ does not survive a fresh machine).
export KEEP=${KEEP-models/celeba64-phase1/run}
run_pieces "$bin" "$out" "$stop" "$piece" "$total" 0 "${common[@]}" "${extra[@]}"
echo "evaluate: $bin eval samples --checkpoint $out/stage-4.safetensors --n 1000 --sampler ddim --steps 50"
