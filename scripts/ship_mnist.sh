#!/usr/bin/env bash
# Ships an MNIST candidate (issue 17's real-digit level) from `make train-mnist-next` or `make
# train-mnist-cosine`: moves the current shipped model to models/mnist-v2 (kept, as the issue asks),
# copies piece K's stage file (its EMA weights with their config, float32: the very file its
# evaluations measured) to models/mnist, copies the run's log, loss curve and config and the
# piece's evaluations (eval-seedS.txt, 1000 DDIM-50 samples each), and regenerates the README's
# sample grids and gate figures (scripts/regen_sample_grids.sh). Refuses unless both evaluations
# of piece K print "real-digit level ...: PASS". The model README, `make train-mnist` and the
# README's prose and numbers are then updated by hand.
#
#   bash scripts/ship_mnist.sh K [RECIPE_OUT]     # RECIPE_OUT: runs/mnist-next (or runs/mnist-cosine)
set -euo pipefail
cd "$(dirname "$0")/.."
k=${1:?usage: bash scripts/ship_mnist.sh K [RECIPE_OUT] (K: the piece whose stage passed)}
in=${2:-runs/mnist-next}
stage=$in/stage-$k.safetensors
for f in "$stage" "$in/eval-$k-seed1.txt" "$in/eval-$k-seed2.txt"; do
  if [[ ! -f $f ]]; then echo "ship_mnist.sh: $f not found" >&2; exit 2; fi
done
for s in 1 2; do
  if ! grep -q "^real-digit level.*: PASS" "$in/eval-$k-seed$s.txt"; then
    echo "ship_mnist.sh: $in/eval-$k-seed$s.txt does not pass the real-digit level:" >&2
    grep "real-digit level" "$in/eval-$k-seed$s.txt" >&2 || true
    exit 1
  fi
done
if [[ ! -d models/mnist-v2 ]]; then
  git mv models/mnist models/mnist-v2
fi
mkdir -p models/mnist
cp "$stage" models/mnist/model.safetensors
for f in log.jsonl loss.png config.yaml; do
  if [[ -f $in/run/$f ]]; then cp "$in/run/$f" "models/mnist/$f"; fi
done
for s in 1 2; do cp "$in/eval-$k-seed$s.txt" "models/mnist/eval-seed$s.txt"; done
bash scripts/regen_sample_grids.sh
echo "ship_mnist.sh: models/mnist is piece $k of $in; write models/mnist/README.md and update make train-mnist and the README by hand"
