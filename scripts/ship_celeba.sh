#!/usr/bin/env bash
# Assembles models/celeba64 (issue 17) from the finished face recipe (`make train-celeba`): the
# weights of its last step chosen below (EMA, debiased EMA or raw) with their config, stored as float16 (`diffinv export --dtype f16`: 21
# instead of 43 MB: every tracked file of the repository together was 37 MB before it; the
# rounding moved 20-step DDIM samples of the step-4500 weights by at most 0.0029 of [-1, 1],
# rms 0.0004, and the gate below is measured on the shipped file), the run's log and loss curve, the README's
# 64-sample grids (DDIM-50 and DDPM-1000, seed 1, docs/img/faces-*.png) and the quality gate on 1000
# DDIM-50 samples against the test split for seeds 1 and 2 (models/celeba64/eval-seedS.txt).
# Which weights are shipped (EMA, debiased EMA or raw) is chosen first by FID against validation
# faces (models/celeba64/weights-choice.txt; after phase 2, phase 1 is a candidate too). Every sampling here uses DDIM with η = ETA (1), and
# the file stores sample.eta = ETA as its default. The model README's prose (lineage, figures) is written
# by hand from these files.
#
#   bash scripts/ship_celeba.sh [RECIPE_OUT]     # RECIPE_OUT: runs/celeba-recipe
#
#   SHIP_FROM=models/celeba64-phase1/model.safetensors bash scripts/ship_celeba.sh   # a model file as it is
#
# MODEL_OUT (models/celeba64) and GRID_DIR (docs/img) move the outputs, CHOOSE_N (500) sets the
# samples of the weights' choice, CHOOSE_ONLY=1 stops once the chosen weights are exported.
#
# About 2.3 h on 2 cores alone: the weights' choice (3 candidates of ~6 min), the DDIM-50 grid (4 min),
# the DDPM-1000 grid (47 min) and the two evaluations (37 min each; session 16); rerunning skips the
# parts whose output exists.
set -euo pipefail
cd "$(dirname "$0")/.."
in=${1:-runs/celeba-recipe}
out=${MODEL_OUT:-models/celeba64}
img=${GRID_DIR:-docs/img}
bin=./bin/diffinv
# DDIM's η for the weights' choice, the gate and the shipped file's default (sample.eta): this face
# model's deterministic DDIM samples (η = 0) break into coloured textures on about a third of the
# initial noises where DDIM with fresh noise (η = 1) and DDPM draw faces from the same weights (session
# 14, BENCHMARKS.md), so it ships with η = 1.
eta=${ETA:-1}
# SHIP_FROM=FILE ships a model file as it is (an exported model such as the committed phase-1 model,
# its sample.eta already set) instead of choosing from the recipe's last checkpoint: the recipe's
# folder (RECIPE_OUT) may be gone with the machine that trained it (runs/ is not committed). Its
# weights-choice.txt, when it has one beside it, is copied; the grids and the gate run as below.
if [[ -n ${SHIP_FROM:-} ]]; then
  if [[ ! -f $SHIP_FROM ]]; then
    echo "ship_celeba.sh: SHIP_FROM=$SHIP_FROM: no such model file" >&2
    exit 2
  fi
fi
stage=$in/stage-4.safetensors
if [[ -z ${SHIP_FROM:-} && ! -f $stage ]]; then
  echo "ship_celeba.sh: $stage not found: the recipe has not finished (make train-celeba)" >&2
  exit 2
fi
go build -o "$bin" ./cmd/diffinv
mkdir -p "$out" "$img"
# Phase 1 ends at step 12,000; once the second phase (make train-celeba-more, RECIPE_OUT/more) has
# finished, its last checkpoint (named in RECIPE_OUT/more/final.txt) is shipped instead. Phase 2
# starts from chosen weights (--init), so its choice is between its EMA and raw weights (a debiased
# EMA needs the initial weights of a fresh run) and the phase-1 model it started from (PHASE1,
# models/celeba64-phase1/model.safetensors): a warm restart first costs quality (its EMA at step
# 1,250 scored 112 against phase 1's 83, BENCHMARKS.md), and if the annealed end has not won it back,
# phase 1 ships rather than a worse model.
phase1=${PHASE1:-models/celeba64-phase1/model.safetensors}
src=$in final=$in/run/checkpoints/step-00012000.safetensors kinds=(ema ema-debiased raw)
if [[ -f $in/more/final.txt ]]; then
  src=$in/more final=$(cat "$in/more/final.txt") kinds=(ema raw phase1)
  if [[ ! -f $phase1 ]]; then
    echo "ship_celeba.sh: $phase1 not found (the phase-1 model phase 2 started from; PHASE1 names another)" >&2
    exit 2
  fi
fi
if [[ -n ${SHIP_FROM:-} ]]; then
  final=$SHIP_FROM
elif [[ ! -f $final ]]; then
  echo "ship_celeba.sh: $final not found (the recipe's last checkpoint)" >&2
  exit 2
fi
echo "== shipping from $final"
# Which weights to ship, chosen on validation faces: the EMA (phase 1: decay 0.9995, no warm-up, so
# it still holds 0.25 % of the initial weights at step 12,000), the debiased EMA (that share removed)
# or the raw weights. Each draws CHOOSE_N DDIM-25 samples (η = ETA, seed 3) scored against 1000 val
# faces; the lowest FID is shipped. At step 12,000 with η = 1: EMA 83.2, raw 94.2, debiased 104.8
# (models/celeba64-phase1); session 13's η = 0 comparisons had favoured the raw weights. At CHOOSE_N
# 500 a rounding change alone moves FID by up to ~10 points (BENCHMARKS.md): raise it for close calls.
choice=$src/weights-choice.txt
if [[ -n ${SHIP_FROM:-} ]]; then
  echo "== SHIP_FROM: no choice; shipping $SHIP_FROM as it is"
  if [[ ! $SHIP_FROM -ef $out/model.safetensors ]]; then cp "$SHIP_FROM" "$out/model.safetensors"; fi
  choice=$(dirname "$SHIP_FROM")/weights-choice.txt # the choice that made that file, if any
  if [[ -f $choice && ! $choice -ef $out/weights-choice.txt ]]; then cp "$choice" "$out/weights-choice.txt"; fi
elif [[ ! -f $choice ]]; then
  rows=()
  for w in "${kinds[@]}"; do
    f=$src/choose-$w.safetensors e=$src/choose-$w.txt
    if [[ $w == phase1 ]]; then f=$phase1; fi # the committed file as it is (f16, sample.eta set)
    if [[ ! -f $e ]]; then
      if [[ $w != phase1 ]]; then "$bin" export --checkpoint "$final" --out "$f" --weights "$w"; fi
      "$bin" eval samples --checkpoint "$f" --n "${CHOOSE_N:-500}" --sampler ddim --steps 25 --seed 3 --reference val --set sample.eta="$eta" >"$e.tmp"
      mv "$e.tmp" "$e"
    fi
    fid=$(sed -n 's/^FID \([0-9.]*\),.*/\1/p' "$e")
    if [[ -z $fid ]]; then
      echo "ship_celeba.sh: $e holds no FID line (remove it to evaluate $w again)" >&2
      exit 2
    fi
    rows+=("$fid $w")
  done
  printf '%s\n' "${rows[@]}" | sort -g >"$choice.tmp"
  mv "$choice.tmp" "$choice"
fi
if [[ -n ${SHIP_FROM:-} ]]; then
  : # shipped as it is, above
else
  echo "== weights by val FID (${CHOOSE_N:-500} DDIM-25 samples, η = $eta, seed 3):"
  cat "$choice"
  weights=$(head -1 "$choice" | cut -d' ' -f2)
  if [[ $weights == phase1 ]]; then
    # phase 2 did not beat its start: ship phase 1 as committed (f16, its sample.eta 1) with its run's files
    echo "== phase 2 did not beat phase 1 on val: shipping $phase1"
    cp "$phase1" "$out/model.safetensors"
    src=$in
  else
    "$bin" export --checkpoint "$final" --out "$out/model.safetensors" --dtype f16 --weights "$weights" --set sample.eta="$eta"
  fi
  cp "$choice" "$out/weights-choice.txt"
fi
if [[ -n ${CHOOSE_ONLY:-} ]]; then
  echo "ship_celeba.sh: CHOOSE_ONLY: stopped after $out/model.safetensors"
  exit 0
fi
for f in log.jsonl loss.png; do
  if [[ -f $src/run/$f ]]; then cp "$src/run/$f" "$out/$f"; fi
done
if [[ $src != "$in" ]]; then # phase 2: phase 1's log and loss curve beside it
  for f in log.jsonl loss.png; do
    if [[ -f $in/run/$f ]]; then cp "$in/run/$f" "$out/phase1-$f"; fi
  done
fi
for spec in ddim:50 ddpm:1000; do
  name=${spec%%:*} steps=${spec##*:}
  grid=$img/faces-$name.png
  if [[ -f $grid ]]; then echo "== $grid: done"; continue; fi
  "$bin" sample --checkpoint "$out/model.safetensors" --sampler "$name" --steps "$steps" --n 64 --seed 1 --out "$grid"
  rm -f "${grid%.png}.safetensors" # the raw samples beside the grid: not kept in the repository
done
for seed in 1 2; do
  f=$out/eval-seed$seed.txt
  if [[ -f $f ]]; then echo "== $f: done"; cat "$f"; continue; fi
  "$bin" eval samples --checkpoint "$out/model.safetensors" --n 1000 --sampler ddim --steps 50 --seed "$seed" --set sample.eta="$eta" | tee "$f.tmp"
  mv "$f.tmp" "$f"
done
echo "ship_celeba.sh: $out assembled; write $out/README.md (lineage, loss curve, grids, gate) by hand"
