#!/usr/bin/env bash
# make test-slurm: runs two small experiments on a real single-node Slurm
# cluster (scripts/slurm/start.sh) with `diffinv experiment slurm --submit`,
# each a job array of shards and the report job that depends on it:
# scripts/slurm/test-experiment.yaml (4 solve cells) as 3 shards and
# scripts/slurm/test-train.yaml (one tiny training cell) as 2 shards. Waits
# for the four jobs, then checks that each results folder holds the same
# results.csv, table.md, grids, plots and cell files as a local `diffinv
# experiment run` of the same file: byte for byte, apart from timings and
# the results folder's path (cell JSONs without their wall time; the
# training cell's log.jsonl without wall_s and steps_per_s; its model and
# checkpoints with the same tensor bytes and the same header apart from
# train.out, the cell folder), and that `diffinv experiment status` counts
# every cell done. Stops the daemons it started (KEEP_SLURM=1 leaves them
# up); a cluster that was up before is left up.
#
# The jobs run with GOMAXPROCS = --cpus (1; the generated scripts export
# it) and the local training run does too: a trained model's last bits
# depend on how many goroutines split each batch's gradients, so a training
# cell equals another process's only at the same GOMAXPROCS (solve cells do
# at any).
#
# Environment: BIN (default bin/diffinv, built by make), SHARDS (3, the
# solve experiment's), TRAIN_SHARDS (2), SLURM_TIMEOUT (seconds to wait for
# the jobs, 600), SLURM_TEST_DIR (the cluster's folder, /tmp/diffinv-slurm),
# KEEP_SLURM, KEEP_WORK (keep the work folder), SLURM_SKIP_IF_UNAVAILABLE=1
# (CI: a cluster that cannot start on the machine is a loud skip, not a
# failure; once it runs, every check fails the target as usual).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
BIN=${BIN:-bin/diffinv}
SHARDS=${SHARDS:-3}
TRAIN_SHARDS=${TRAIN_SHARDS:-2}
CPUS=1
TIMEOUT=${SLURM_TIMEOUT:-600}
FILE=scripts/slurm/test-experiment.yaml
TRAIN_FILE=scripts/slurm/test-train.yaml
D=${SLURM_TEST_DIR:-/tmp/diffinv-slurm}
export SLURM_CONF=$D/slurm.conf
PATH=$PATH:/usr/sbin
t0=$(date +%s)
fail() { echo "test-slurm: FAILED: $*" >&2; exit 1; }

[ -x "$BIN" ] || fail "$BIN is missing: run make build (or make test-slurm, which builds it)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

# The cluster: started here unless it is up already.
started=0
if command -v scontrol >/dev/null && [ -s "$SLURM_CONF" ] && scontrol ping 2>/dev/null | grep -q UP; then
  echo "test-slurm: using the running cluster (SLURM_CONF=$SLURM_CONF)"
else
  started=1
fi
if ! bash scripts/slurm/start.sh; then
  # CI sets SLURM_SKIP_IF_UNAVAILABLE=1: a machine that cannot run the daemons (no root, ports
  # taken, no apt) skips the test loudly instead of failing the build; everywhere else it fails.
  if [ "${SLURM_SKIP_IF_UNAVAILABLE:-0}" = 1 ]; then
    echo "test-slurm: SKIPPED: the Slurm cluster could not start on this machine (see above); nothing was tested" >&2
    exit 0
  fi
  fail "the Slurm cluster did not start (see above)"
fi

W=$(mktemp -d /tmp/diffinv-slurm-test.XXXXXX)
jobs=""
cleanup() {
  rc=$?
  if [ $rc -ne 0 ]; then
    [ -n "$jobs" ] && scancel $jobs 2>/dev/null || true
    for f in "$W"/slurm*/slurm/logs/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  fi
  if [ "$started" = 1 ] && [ "${KEEP_SLURM:-0}" != 1 ]; then bash scripts/slurm/stop.sh; fi
  if [ $rc -eq 0 ] && [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$W"; else echo "test-slurm: work folder kept: $W" >&2; fi
  exit $rc
}
trap cleanup EXIT

# The data: the MNIST files where the model's config says (data.dir,
# ../shared/data/mnist), else generated ones (any images will do: every run
# reads the same ones): 16 random 28×28 test images (the solve cells take
# the first 4; the training cell's FID/KID reference is all 16) and 64
# training images, given to every diffinv process (the jobs too: sbatch
# passes the environment on) by DIFFINV_DATA_DIR.
mnist=${DIFFINV_DATA_DIR:-../shared/data/mnist}
have() { [ -e "$mnist/$1.gz" ] || [ -e "$mnist/$1" ]; }
if ! { have t10k-images-idx3-ubyte && have t10k-labels-idx1-ubyte && have train-images-idx3-ubyte && have train-labels-idx1-ubyte; }; then
  echo "test-slurm: no MNIST files in $mnist; generating 16 test and 64 training images (random 28×28) in $W/mnist"
  mkdir -p "$W/mnist"
  be32() { local b; for b in 24 16 8 0; do printf "\\x$(printf %02x $(( ($1 >> b) & 255 )))"; done; }
  idx() { # split n: n random images, labelled 0..9 in turn
    { printf '\x00\x00\x08\x03'; be32 "$2"; be32 28; be32 28; head -c $(( $2 * 784 )) /dev/urandom; } > "$W/mnist/$1-images-idx3-ubyte"
    { printf '\x00\x00\x08\x01'; be32 "$2"; for ((i = 0; i < $2; i++)); do printf "\\x0$((i % 10))"; done; } > "$W/mnist/$1-labels-idx1-ubyte"
  }
  idx t10k 16
  idx train 64
  export DIFFINV_DATA_DIR=$W/mnist
fi

# Each experiment as an array of shards and its report job, into a results
# folder given relatively (as an experiment file's output: is) and with a
# blank and a % in its name: the #SBATCH lines must hold such paths.
submit() { # file shards folder: prints "array report"
  local rel sub ids
  rel=$(realpath -m --relative-to=. "$3")
  echo "test-slurm: submitting $1 as $2 shards into $rel" >&2
  sub=$("$BIN" experiment slurm "$1" --out "$rel" --shards "$2" --cpus "$CPUS" --mem 1G \
    --partition debug --time 00:10:00 --submit 2>&1) || { echo "$sub" >&2; fail "diffinv experiment slurm $1 --submit failed"; }
  echo "$sub" >&2
  ids=$(echo "$sub" | sed -n 's/^submitted array \([0-9]*\) .* report job \([0-9]*\)$/\1 \2/p')
  [ -n "$ids" ] || fail "could not read the job ids of $1 from submit.sh's output (want 'submitted array N (...) and report job M')"
  echo "$ids"
}
s="$W/slurm out 100%"
st="$W/slurm train 100%"
ids=$(submit "$FILE" "$SHARDS" "$s")
read -r array report <<<"$ids"
jobs="$array $report"
ids=$(submit "$TRAIN_FILE" "$TRAIN_SHARDS" "$st")
read -r tarray treport <<<"$ids"
jobs="$jobs $tarray $treport"

# Wait until no job is queued or running.
deadline=$(( $(date +%s) + TIMEOUT ))
while [ -n "$(squeue -h -j "${jobs// /,}" -o %i 2>/dev/null)" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    squeue -j "${jobs// /,}" >&2 || true
    fail "the jobs did not finish in $TIMEOUT s (SLURM_TIMEOUT); squeue above, node: $(sinfo -h -N -o '%N %t' 2>&1)"
  fi
  sleep 2
done
# Their final states (slurmctld keeps finished jobs for MinJobAge = 600 s).
checkjobs() { # array report shards folder
  local states bad ntasks
  states=$(scontrol -o show job "$1" 2>&1; scontrol -o show job "$2" 2>&1)
  bad=$(echo "$states" | grep -o 'JobId=[0-9]* .*JobState=[A-Z_]*' | grep -v 'JobState=COMPLETED' | sed 's/ .*JobState=/ /' || true)
  ntasks=$(echo "$states" | grep -c "ArrayJobId=$1 " || true)
  [ -z "$bad" ] || fail "jobs did not complete: $bad (logs in $4/slurm/logs; a launch failure is in $D/log/slurmd.log)"
  [ "$ntasks" -eq "$3" ] || fail "the array $1 ran $ntasks tasks, want $3"
  echo "test-slurm: array $1 ($ntasks tasks) and report job $2 COMPLETED"
}
checkjobs "$array" "$report" "$SHARDS" "$s"
checkjobs "$tarray" "$treport" "$TRAIN_SHARDS" "$st"

# The same experiments locally, each in one process (the training one at
# the jobs' GOMAXPROCS).
"$BIN" experiment run "$FILE" --out "$W/local" >"$W/local.log" 2>&1 || { tail -20 "$W/local.log" >&2; fail "the local experiment run of $FILE failed (log $W/local.log)"; }
GOMAXPROCS=$CPUS "$BIN" experiment run "$TRAIN_FILE" --out "$W/local-train" >"$W/local-train.log" 2>&1 ||
  { tail -20 "$W/local-train.log" >&2; fail "the local experiment run of $TRAIN_FILE failed (log $W/local-train.log)"; }

# Compare: reports, plots and images byte for byte (table.md without its machine-use line), cell
# results without timings and usage; a training cell's log without timings and its model and
# checkpoints (safetensors) with the same tensor bytes and the same header
# once the results folder's path (train.out in the header, the checkpoints'
# paths in the log) is replaced by OUT and the header's padding (blanks to
# a multiple of 8 bytes, which a longer path changes) dropped.
hdrlen() { od -An -tu8 -N8 "$1" | tr -d ' '; }
# A cell result's measurements of the machine, not of the cell: its times and its usage record
# (CPU seconds, logical CPUs, load; the report's "Machine use while timed" line says them).
TIMING_KEYS='"(wall_)?seconds":|"usage":|"cpu_seconds":|"cores":|"load1":'

compare() { # local slurm file: every file of the local run equals the Slurm run's
  local l=$1 s=$2 f n=0 nl ns
  (cd "$l" && find . -type f \( -name '*.csv' -o -name '*.md' -o -name '*.png' -o -name '*.json' -o -name '*.jsonl' -o -name '*.safetensors' \) | sort) > "$W/files.local"
  (cd "$s" && find . -path ./slurm -prune -o -type f \( -name '*.csv' -o -name '*.md' -o -name '*.png' -o -name '*.json' -o -name '*.jsonl' -o -name '*.safetensors' \) -print | sort) > "$W/files.slurm"
  diff -u "$W/files.local" "$W/files.slurm" >&2 || fail "the Slurm run of $3 wrote other files than the local run (diff above: - local, + slurm)"
  for f in results.csv table.md; do
    [ -s "$s/$f" ] || fail "$s/$f is missing or empty after the Slurm run"
  done
  # The results folder as each run names it (absolute or relative).
  export CMP_L=$l CMP_S=$s CMP_SREL
  CMP_SREL=$(realpath -m --relative-to=. "$s")
  # (the relative name first: it ends with the absolute one's tail)
  unpath() { perl -pe 's/\Q$ENV{CMP_SREL}\E/OUT/g; s/\Q$ENV{CMP_S}\E/OUT/g; s/\Q$ENV{CMP_L}\E/OUT/g'; }
  while read -r f; do
    case $f in
      *.json) diff -u <(grep -v -E "$TIMING_KEYS" "$l/$f") <(grep -v -E "$TIMING_KEYS" "$s/$f") >&2 ||
                fail "$3: $f differs (apart from timings) between the local run and the Slurm run (diff above)" ;;
      *.jsonl) diff -u <(perl -pe 's/"(wall_s|steps_per_s)":[^,}]*,?//g' "$l/$f" | unpath) <(perl -pe 's/"(wall_s|steps_per_s)":[^,}]*,?//g' "$s/$f" | unpath) >&2 ||
                fail "$3: $f differs (apart from timings and the results folder) between the local run and the Slurm run (diff above)" ;;
      *.safetensors)
        nl=$(hdrlen "$l/$f") ns=$(hdrlen "$s/$f")
        cmp <(tail -c +$((9 + nl)) "$l/$f") <(tail -c +$((9 + ns)) "$s/$f") >&2 ||
          fail "$3: $f: the tensors differ between the local run and the Slurm run"
        diff <(head -c $((8 + nl)) "$l/$f" | tail -c +9 | unpath | tr ',' '\n' | sed 's/ *$//') <(head -c $((8 + ns)) "$s/$f" | tail -c +9 | unpath | tr ',' '\n' | sed 's/ *$//') >&2 ||
          fail "$3: $f: the header differs (apart from the results folder) between the local run and the Slurm run (diff above)" ;;
      *.md) diff -u <(grep -v '^Machine use while timed:' "$l/$f") <(grep -v '^Machine use while timed:' "$s/$f") >&2 ||
              fail "$3: $f differs (apart from the machine-use line) between the local run and the Slurm run (diff above)" ;;
      *.csv) diff -u "$l/$f" "$s/$f" >&2 || fail "$3: $f differs between the local run and the Slurm run (diff above)" ;;
      *) cmp "$l/$f" "$s/$f" >&2 || fail "$3: $f differs between the local run and the Slurm run" ;;
    esac
    n=$((n+1))
  done < "$W/files.local"
  echo "test-slurm: $3: $n files equal to the local run's"
}
compare "$W/local" "$s" "$FILE"
compare "$W/local-train" "$st" "$TRAIN_FILE"
grep -q '^train_' "$st/results.csv" || fail "$TRAIN_FILE: results.csv holds no training cell"
for f in model.safetensors log.jsonl loss.png; do
  ls "$st"/cells/train_*/"$f" >/dev/null 2>&1 || fail "$TRAIN_FILE: the training cell has no $f"
done

# Status: every cell done.
status() { # file folder: prints the cell count
  local st line cells name
  name=$(sed -n 's/^name: *//p' "$1")
  st=$("$BIN" experiment status "$1" --out "$(realpath -m --relative-to=. "$2")" 2>&1) || { echo "$st" >&2; fail "diffinv experiment status $1 failed"; }
  echo "$st" >&2
  line=$(echo "$st" | grep "^experiment $name ")
  cells=$(echo "$line" | sed -n 's/.*: \([0-9]*\) cells: .*/\1/p')
  echo "$line" | grep -q ": $cells cells: $cells done, 0 running, 0 failed, 0 abandoned, 0 left" ||
    fail "experiment status does not count every cell of $1 done: $line"
  echo "$cells"
}
cells=$(status "$FILE" "$s")
tcells=$(status "$TRAIN_FILE" "$st")
echo "test-slurm: PASS in $(( $(date +%s) - t0 )) s ($cells solve cells in $SHARDS shards, $tcells training cell in $TRAIN_SHARDS shards)"
