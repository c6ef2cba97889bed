#!/usr/bin/env bash
# The face recipe's second phase (issue 17): `make train-celeba` ends at step 12,000 (about 6 h alone
# on 2 cores with the bf16 engine, where the issue allows about 10), with samples still short of the
# face gate. This phase spends the rest: it starts from models/celeba64-phase1/model.safetensors (INIT
# overrides), the step-12,000 weights that ship_celeba.sh chose on validation faces (EMA, debiased EMA
# or raw; committed, float16, so that this phase starts from the repository: `CHOOSE_ONLY=1
# MODEL_OUT=models/celeba64-phase1 make ship-celeba` wrote it) with a fresh Adam (`--init`), lr
# 1e-4 after 200 warm-up steps with a cosine decay to 0 over TOTAL steps, and an EMA of decay 0.999
# with the warm-up min(0.999, (1+k)/(10+k)) (`train.ema_warmup`): phase 1's EMA (0.9995, no warm-up)
# lagged the weights it averaged (BENCHMARKS.md); a shorter, warmed-up one follows the annealed
# weights. train.seed 2 draws other noises and data orders than phase 1's seed 1.
#
#   bash scripts/train_celeba_more.sh [RECIPE_OUT [TRAIN FLAGS...]]   # RECIPE_OUT: runs/celeba-recipe
#
# TOTAL (7000) steps in pieces of PIECE (3500, about 1.6 h alone each) with --stop-at; rerun to
# resume (bit-identical) and skip finished pieces. Piece K's EMA weights go to
# RECIPE_OUT/more/stage-K.safetensors; once all are trained, RECIPE_OUT/more/final.txt names the last
# checkpoint, and ship_celeba.sh ships from this phase.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pieces.sh
in=${1:-runs/celeba-recipe}
shift || true
extra=("$@")
out=$in/more
bin=./bin/diffinv
stop=${STOP:-2}
total=${TOTAL:-7000}
piece=${PIECE:-3500}
if ((piece <= 0 || total % piece != 0)); then
  echo "train_celeba_more.sh: PIECE=$piece must be positive and divide TOTAL=$total" >&2
  exit 2
fi
init=${INIT:-models/celeba64-phase1/model.safetensors}
if [[ ! -f $init ]]; then
  echo "train_celeba_more.sh: $init not found: phase 1's chosen weights (CHOOSE_ONLY=1 MODEL_OUT=models/celeba64-phase1 make ship-celeba writes them)" >&2
  exit 2
fi
go build -o "$bin" ./cmd/diffinv
echo "== phase 2 from $init"

common=(--config configs/celeba64.yaml --init "$init" --grid-n 16 --grid-steps 25
  --set train.seed=2 --set train.steps=$total --set train.batch_size=32 --set train.lr=0.0001
  --set train.warmup_steps=200 --set train.lr_decay=cosine --set train.ema_decay=0.999
  --set train.ema_warmup=true --set train.checkpoint_every=250 --set train.keep_checkpoints=2
  --set train.sample_every=1000 --set train.log_every=25)

# KEEP (models/celeba64-phase2/run; KEEP= turns it off): where each finished piece's log and loss curve
# are copied, to commit (scripts/lib/pieces.sh: runs/ does not survive a fresh machine).
export KEEP=${KEEP-models/celeba64-phase2/run}
run_pieces "$bin" "$out" "$stop" "$piece" "$total" 0 "${common[@]}" "${extra[@]}"
# Once the last piece is trained, name the phase's last checkpoint in OUT/final.txt: ship_celeba.sh
# ships from it (and needs to know neither TOTAL nor PIECE).
if [[ -f $out/stage-$((total / piece)).safetensors ]]; then
  printf '%s/run/checkpoints/step-%08d.safetensors\n' "$out" "$total" >"$out/final.txt"
fi
