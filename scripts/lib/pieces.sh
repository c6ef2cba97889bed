# scripts/lib/pieces.sh: the piece loop shared by the long training recipes (train_celeba.sh,
# train_mnist_next.sh, train_mnist_cosine.sh). Sourced, not run. A recipe is one `diffinv train` run of TOTAL steps taken
# in pieces of PIECE steps with --stop-at, so that each piece fits a working session; piece K ends
# with the EMA weights of step K·PIECE exported to OUT/stage-K.safetensors. A piece whose stage file
# exists is skipped; an interrupted piece resumes from the run's last checkpoint (bit-identical to
# an uninterrupted run).
#
# runs/ is not committed, and a session may start on a fresh machine without it (the face phase 2's
# checkpoints at step 2,489 were lost that way in session 16): with KEEP=DIR set, each finished piece's log
# (log.jsonl) and loss curve (loss.png) are copied into DIR, to commit, so that a
# recipe's record survives its machine. The training checkpoints (170 MB for the face model) do
# not fit the repository; an interrupted piece resumes only on the machine that has them.

# train_piece BIN OUT K PIECE TOTAL TRAIN_ARGS...: trains piece K into OUT/run unless
# OUT/stage-K.safetensors exists, then exports that stage file.
train_piece() {
  local bin=$1 out=$2 k=$3 piece=$4 total=$5
  shift 5
  local at=$((k * piece))
  if [[ -f $out/stage-$k.safetensors ]]; then
    echo "== piece $k (steps to $at): trained"
    return 0
  fi
  local resume=() stopat=(--stop-at "$at")
  if compgen -G "$out/run/checkpoints/step-*.safetensors" >/dev/null; then resume=(--resume); fi
  if ((at == total)); then stopat=(); fi
  echo "== piece $k: steps to $at of $total"
  "$bin" train --out "$out/run" "$@" "${resume[@]}" "${stopat[@]}"
  local ckpt
  ckpt=$(printf '%s/run/checkpoints/step-%08d.safetensors' "$out" "$at")
  "$bin" export --checkpoint "$ckpt" --out "$out/stage-$k.safetensors"
  keep_record "$out"
}

# keep_record OUT: copies OUT/run's log and loss curve into $KEEP (the run config is in every
# exported model's metadata) when KEEP is set.
keep_record() {
  local out=$1 f
  if [[ -z ${KEEP:-} ]]; then return 0; fi
  mkdir -p "$KEEP"
  for f in log.jsonl loss.png; do
    if [[ -f $out/run/$f ]]; then cp "$out/run/$f" "$KEEP/$f"; fi
  done
  echo "== $out/run's log and loss curve copied to $KEEP (commit them)"
}

# eval_stage BIN OUT K: the MNIST quality gate and real-digit level (`diffinv eval samples`, 1000
# DDIM-50 samples) of OUT/stage-K.safetensors for sample seeds 1 and 2, kept in
# OUT/eval-K-seedS.txt (an existing file is not redone); prints their FID, confident and level lines.
eval_stage() {
  local bin=$1 out=$2 k=$3 seed f
  for seed in 1 2; do
    f=$out/eval-$k-seed$seed.txt
    if [[ ! -f $f ]]; then
      "$bin" eval samples --checkpoint "$out/stage-$k.safetensors" --n 1000 --seed "$seed" >"$f.tmp"
      mv "$f.tmp" "$f"
    fi
    grep -E "^FID|^confident|real-digit level" "$f"
  done
}

# run_pieces BIN OUT STOP PIECE TOTAL EVAL TRAIN_ARGS...: pieces 1 to min(STOP, TOTAL/PIECE) with
# train_piece, each followed by eval_stage when EVAL is 1 (the MNIST recipes).
run_pieces() {
  local bin=$1 out=$2 stop=$3 piece=$4 total=$5 eval=$6 k
  shift 6
  for ((k = 1; k <= stop && k <= total / piece; k++)); do
    train_piece "$bin" "$out" "$k" "$piece" "$total" "$@"
    if ((eval)); then eval_stage "$bin" "$out" "$k"; fi
  done
}
