#!/usr/bin/env bash
# Trains the shipped MNIST model (models/mnist/model.safetensors) from scratch with the recipe that
# made it: five `diffinv train` stages of the configs/mnist.yaml network (1.19 M parameters),
# 40,000 steps in all, about 6 hours on 2 cores. models/mnist/README.md explains each stage.
#
#   bash scripts/train_mnist.sh [OUT [TRAIN FLAGS...]]    # OUT defaults to runs/mnist-recipe
#
# Extra flags go to every stage, e.g. `--engine torch --device cuda` (needs `make build-torch`
# first; then each stage takes minutes on a GPU, not a bitwise copy of the CPU run).
# Interrupt it at any time: run it again and it resumes the unfinished stage from its last
# checkpoint (bit-identical to an uninterrupted run) and skips the finished ones. The result is
# OUT/5-p2-anneal/model.safetensors. START=4 skips the first three stages (≈ 4 h) and starts
# from their committed result, models/mnist-p2/model.safetensors (≈ 2 h on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/mnist-recipe}
shift || true
extra=("$@")
bin=./bin/diffinv
start=${START:-1}
if [[ $start != 1 && $start != 4 ]]; then
  echo "train_mnist.sh: START=$start, want 1 (from scratch) or 4 (from models/mnist-p2)" >&2
  exit 2
fi
go build -o "$bin" ./cmd/diffinv

# part DIR MARK FLAGS...: one `diffinv train` in OUT/DIR, resumed when the folder has checkpoints,
# skipped once it has finished (OUT/DIR/.done-MARK).
part() {
  local dir=$out/$1 mark=$2
  shift 2
  if [[ -f $dir/.done-$mark ]]; then
    echo "== $dir ($mark): done"
    return
  fi
  local resume=()
  if compgen -G "$dir/checkpoints/step-*.safetensors" >/dev/null; then resume=(--resume); fi
  echo "== $dir ($mark)"
  "$bin" train --config configs/mnist.yaml --out "$dir" --grid-n 16 "${resume[@]}" "$@" "${extra[@]}"
  touch "$dir/.done-$mark"
}

p2=(--set train.loss_weight=p2 --set train.ema_decay=0.9995 --set train.warmup_steps=200
    --set train.lr_decay=cosine --set train.sample_every=2000 --set train.checkpoint_every=500)

# 1. From scratch, L_simple: 8000 steps at lr 1e-3, then the same run resumed to 12000 at 2e-4
#    (the first shipped model, models/mnist-v1).
stage3=models/mnist-p2/model.safetensors
if [[ $start == 1 ]]; then
  part 1-base lr1e-3
  part 1-base lr2e-4 --set train.steps=12000 --set train.lr=0.0002 --set train.warmup_steps=0 \
      --resume-changes train.lr,train.warmup_steps
  # 2. Fine-tune from its EMA weights (fresh Adam): lr 1e-4 cosine to 0 over 4500 steps.
  part 2-finetune all --init "$out/1-base/model.safetensors" --set train.lr=0.0001 \
      --set train.warmup_steps=0 --set train.lr_decay=cosine --set train.steps=4500 --set train.sample_every=0
  # 3. P2 loss weighting (k = γ = 1), lr 2e-4 cosine over 12000 steps (models/mnist-p2).
  part 3-p2 all --init "$out/2-finetune/model.safetensors" "${p2[@]}" --set train.lr=0.0002 --set train.steps=12000
  stage3=$out/3-p2/model.safetensors
fi
# 4. P2 again at lr 1e-4 on a 20000-step cosine schedule, taken at step 5500.
part 4-p2 all --init "$stage3" "${p2[@]}" --set train.lr=0.0001 --set train.steps=20000 \
    --stop-at 5500
# 5. P2, lr 5e-5 cosine to 0 over 6000 steps (100 warm-up steps): the shipped model.
part 5-p2-anneal all --init "$out/4-p2/model.safetensors" "${p2[@]}" --set train.lr=0.00005 \
    --set train.warmup_steps=100 --set train.steps=6000
echo "trained: $out/5-p2-anneal/model.safetensors"
echo "evaluate: $bin eval samples --checkpoint $out/5-p2-anneal/model.safetensors --n 1000"
