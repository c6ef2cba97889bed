#!/usr/bin/env bash
# Early FID of the candidate face networks (issue 17; the candidates and their throughput are
# scripts/celeba_candidates.sh's): each trains STEPS steps on the CelebA train split with the face
# recipe's settings held constant (batch 32, bf16, lr 2e-4 after a STEPS/4 warm-up, no decay, EMA
# 0.9995 with its warm-up, train.ema_warmup, so that the EMA weights are usable this early), then
# `diffinv eval samples` draws N DDIM-25 samples from its EMA weights and from its raw weights and
# scores them on the face attribute classifier's features against 1000 validation faces
# (--reference val: the network is chosen on val, reported numbers come from test). FID at small N
# is biased upwards: compare the candidates with each other, at the same STEPS and N, not with the
# 1000-sample gate.
# Prints a markdown table (network, parameters, median s/step, FID, KID) for BENCHMARKS.md.
#
#   bash scripts/celeba_candidates_fid.sh [STEPS [N]]    # 2000 steps, 256 samples by default
#
# About 45–75 min per candidate on 2 cores alone (5 candidates: ~5 h). Resumable: run it again and
# each candidate resumes from its last checkpoint (OUT/NAME/run) and finished evaluations are kept
# (OUT/NAME/eval-ema.txt, eval-raw.txt). OUT=runs/celeba-candidates; ONLY=K runs the K-th
# candidate (1-based) only; LIMIT=M trains on the first M training faces (a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000}
n=${2:-256}
out=${OUT:-runs/celeba-candidates}
bin=./bin/diffinv
go build -o "$bin" ./cmd/diffinv
mkdir -p "$out"
extra=()
if [[ -n ${LIMIT:-} ]]; then extra+=(--set "data.limit=$LIMIT"); fi
rows=()
k=0
while read -r ch mult blocks attn; do
  k=$((k + 1))
  if [[ -n ${ONLY:-} && $ONLY != "$k" ]]; then continue; fi
  name="c$k-$ch-${mult//[^0-9]/}-$blocks"
  dir=$out/$name
  resume=()
  if compgen -G "$dir/run/checkpoints/step-*.safetensors" >/dev/null; then resume=(--resume); fi
  if [[ ! -f $(printf '%s/run/checkpoints/step-%08d.safetensors' "$dir" "$steps") ]]; then
    echo "== $name: training to step $steps"
    "$bin" train --out "$dir/run" --config configs/celeba64.yaml --precision bf16 --grid-n 0 \
      --set train.steps="$steps" --set train.batch_size=32 --set train.lr=0.0002 \
      --set train.warmup_steps=$((steps / 4)) --set train.lr_decay=constant --set train.ema_decay=0.9995 \
      --set train.ema_warmup=true --set train.checkpoint_every=250 --set train.keep_checkpoints=1 \
      --set train.sample_every=0 --set train.log_every=25 --set model.num_channels="$ch" \
      --set "model.channel_mult=$mult" --set model.num_res_blocks="$blocks" \
      --set "model.attention_resolutions=$attn" "${extra[@]}" "${resume[@]}"
  fi
  # The EMA weights and the raw ones (at a constant lr the average of the last ~2000 steps can be
  # worse than the last weights: the face recipe's step 7,000, BENCHMARKS.md).
  if [[ ! -f $dir/raw.safetensors ]]; then
    "$bin" export --checkpoint "$(printf '%s/run/checkpoints/step-%08d.safetensors' "$dir" "$steps")" --out "$dir/raw.safetensors" --weights raw
  fi
  for w in ema raw; do
    m=$dir/run/model.safetensors
    if [[ $w == raw ]]; then m=$dir/raw.safetensors; fi
    if [[ ! -f $dir/eval-$w.txt ]]; then
      "$bin" eval samples --checkpoint "$m" --n "$n" --sampler ddim --steps 25 --seed 1 --reference val >"$dir/eval-$w.txt.tmp"
      mv "$dir/eval-$w.txt.tmp" "$dir/eval-$w.txt"
    fi
  done
  rows+=("$(python3 - "$dir/run/log.jsonl" "$dir/eval-ema.txt" "$dir/eval-raw.txt" "$ch × $mult, $blocks, $attn" <<'PY'
import json, re, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
params = next(r["params"] for r in recs if r["type"] == "run")
steps = [r for r in recs if r["type"] == "step"]
dt = [(b["wall_s"] - a["wall_s"]) / (b["step"] - a["step"]) for a, b in zip(steps, steps[1:]) if b["step"] > a["step"] and b["wall_s"] > a["wall_s"]]
def fidkid(path):
    m = re.search(r"FID ([0-9.]+), KID ([0-9.e-]+)", open(path).read())
    return (m.group(1), m.group(2)) if m else ("?", "?")
(fe, ke), (fr, kr) = fidkid(sys.argv[2]), fidkid(sys.argv[3])
sps = f"{statistics.median(dt):.2f}" if dt else "?"
print(f"| {sys.argv[4]} | {params/1e6:.2f} M | {sps} | {fe} / {fr} | {ke} / {kr} |")
PY
)")
done <scripts/lib/celeba_candidates.txt # channels, multipliers, blocks, attention resolutions
echo "| network (channels × multipliers, blocks, attention) | parameters | s/step (median) | FID vs val, EMA / raw ($n DDIM-25, step $steps) | KID, EMA / raw |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
