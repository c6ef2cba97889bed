#!/usr/bin/env bash
# Issue 23's paper tables, end to end and resumable: for each experiment file of a set, tune the
# methods' step sizes on its validation images (`diffinv experiment tune`, skipped for files
# without a tune section) and then run the table (`diffinv experiment run --resume`). Run it again
# after an interruption (a session's end, a kill): finished trials and cells are reused, and the
# first unfinished one resumes. SHARDS=N runs N local processes per step (`--shard K/N`: they
# share the output folder, and the machine's cores; 1 by default).
#
#   bash scripts/paper_tables.sh mnist      # paper-mnist-{dps,nonlinear,ddnm,ablate-*}.yaml
#   bash scripts/paper_tables.sh celeba     # paper-celeba-{dps,ddnm}.yaml
#   bash scripts/paper_tables.sh experiments/paper-mnist-dps.yaml ...   # named files
#
# Sizes (2 cores, bf16): the MNIST files take hours each, the face files tens of hours; see each
# file's header. They need their model (models/mnist, models/celeba64): issue 17.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/diffinv
shards=${SHARDS:-1}
case ${1:-} in
mnist) files=(experiments/paper-mnist-dps.yaml experiments/paper-mnist-nonlinear.yaml experiments/paper-mnist-ddnm.yaml
  experiments/paper-mnist-ablate-steps.yaml experiments/paper-mnist-ablate-noise.yaml experiments/paper-mnist-ablate-dps-scale.yaml) ;;
celeba) files=(experiments/paper-celeba-dps.yaml experiments/paper-celeba-ddnm.yaml) ;;
"") echo "usage: bash scripts/paper_tables.sh mnist|celeba|FILE.yaml..." >&2; exit 2 ;;
*) files=("$@") ;;
esac
for f in "${files[@]}"; do
  if [[ ! -f $f ]]; then echo "paper_tables.sh: $f: no such experiment file" >&2; exit 2; fi
done
go build -o "$bin" ./cmd/diffinv

# each STEP FILE: the step (tune or run) on FILE in $shards processes; fails if any fails.
each() {
  local step=$1 f=$2 pids=() k rc=0
  local extra=()
  if [[ $step == run ]]; then extra=(--resume); fi
  if ((shards == 1)); then
    "$bin" experiment "$step" "$f" "${extra[@]}"
    return
  fi
  for ((k = 0; k < shards; k++)); do
    "$bin" experiment "$step" "$f" "${extra[@]}" --shard "$k/$shards" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  return $rc
}

for f in "${files[@]}"; do
  echo "== $f"
  if grep -q '^tune:' "$f"; then
    each tune "$f"
  fi
  each run "$f"
  if ((shards > 1)); then
    "$bin" experiment report "$f" # the table, grids and plots once every shard is done
  fi
done
