#!/usr/bin/env bash
# Issue 16's bf16 acceptance checks outside `make test` (make check-bf16):
#  1. DPS sr4 on 16 shipped-model digits in bf16 within 0.3 dB of fp32
#     (TestShippedBF16DPS, which also logs seconds per image);
#  2. a 2000-step MNIST training run in bf16 tracks the fp32 loss curve from
#     the same seed (TestBF16LossCurve on the two runs' log.jsonl);
#  3. the shipped model's 1000 DDIM-50 samples in bf16 pass the quality gate.
# Resumable: finished training runs are kept in $OUT and resumed, not redone.
# About 45 minutes on 2 cores (the fp32 training run is most of it).
set -euo pipefail
OUT=${1:-runs/check-bf16}
STEPS=${STEPS:-2000}
BIN=${BIN:-bin/diffinv}
mkdir -p "$OUT"
echo "== 1/3 DPS sr4, bf16 against fp32"
DIFFINV_CHECK_BF16=1 go test -count=1 -timeout 60m -run TestShippedBF16DPS -v ./cmd/diffinv | tee "$OUT/dps.txt"
for p in bf16 fp32; do
  echo "== 2/3 training $STEPS steps in $p"
  args=(train --config configs/mnist.yaml --out "$OUT/train-$p" --precision "$p"
        --set train.steps="$STEPS" --set train.sample_every=0 --set train.log_every=10)
  if [ -f "$OUT/train-$p/model.safetensors" ]; then
    echo "(done before)"
  elif [ -d "$OUT/train-$p/checkpoints" ]; then
    "$BIN" "${args[@]}" --resume
  else
    "$BIN" "${args[@]}"
  fi
done
DIFFINV_CURVE_FP32="$PWD/$OUT/train-fp32" DIFFINV_CURVE_BF16="$PWD/$OUT/train-bf16" \
  go test -count=1 -run TestBF16LossCurve -v ./train | tee "$OUT/curve.txt"
echo "== 3/3 quality gate, 1000 DDIM-50 samples in bf16"
"$BIN" eval samples --checkpoint models/mnist/model.safetensors --n 1000 --sampler ddim --steps 50 \
  --precision bf16 | tee "$OUT/gate.txt"
grep -q "quality gate.*PASS" "$OUT/gate.txt"
echo "check-bf16: all three passed"
