#!/usr/bin/env bash
# Measures candidate face networks for issue 17 (configs/celeba64.yaml with model.* overrides):
# parameters, seconds per training step at batch 32 in the bf16 engine (median of steps 6–20,
# the first ones warm up), and peak memory. Run it on an otherwise idle machine: it prints a
# markdown table (and the machine load before and after) for BENCHMARKS.md.
#
#   bash scripts/celeba_candidates.sh [STEPS]      # 20 steps per candidate by default
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
bin=./bin/diffinv
go build -o "$bin" ./cmd/diffinv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| network (channels × multipliers, blocks, attention) | parameters | s/step (batch 32, bf16) | peak RSS |"
echo "|---|---|---|---|"
while read -r ch mult blocks attn; do
  out="$tmp/$ch-$blocks-${mult//[^0-9]/}"
  /usr/bin/time -f "%M" -o "$out.rss" "$bin" train --config configs/celeba64.yaml --out "$out" --precision bf16 \
    --set data.limit=512 --set train.steps="$steps" --set train.batch_size=32 --set train.log_every=1 \
    --set train.sample_every=0 --set train.checkpoint_every=100000 --set model.num_channels="$ch" \
    --set "model.channel_mult=$mult" --set model.num_res_blocks="$blocks" \
    --set "model.attention_resolutions=$attn" >/dev/null 2>"$out.err" || { echo "| $ch × $mult, $blocks, $attn | failed: $(tail -1 "$out.err") | | |"; continue; }
  python3 - "$out/log.jsonl" "$out.rss" "$ch × $mult, $blocks, $attn" <<'PY'
import json, sys, statistics
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
params = next(r["params"] for r in recs if r["type"] == "run")
steps = [r for r in recs if r["type"] == "step"]
dt = [b["wall_s"] - a["wall_s"] for a, b in zip(steps, steps[1:]) if b["step"] > 5]
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024 / 1024
print(f"| {sys.argv[3]} | {params/1e6:.2f} M | {statistics.median(dt):.2f} | {rss:.1f} GB |")
PY
done <scripts/lib/celeba_candidates.txt # channels, multipliers, blocks, attention resolutions
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
