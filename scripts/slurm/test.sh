#!/usr/bin/env bash
# make test-slurm: runs a small experiment (scripts/slurm/test-experiment.yaml)
# on a real single-node Slurm cluster (scripts/slurm/start.sh) with
# `diffinv experiment slurm --shards 3 --submit`: a job array of 3 shards and
# the report job that depends on it. Waits for both, then checks that the
# results folder holds the same results.csv, table.md, grids and cell images
# (byte for byte) and cell results (apart from timings) as a local
# `diffinv experiment run` of the same file, and that `diffinv experiment
# status` counts every cell done. Stops the daemons it started (KEEP_SLURM=1
# leaves them up); a cluster that was up before is left up.
#
# Environment: BIN (default bin/diffinv, built by make), SHARDS (3),
# SLURM_TIMEOUT (seconds to wait for the jobs, 600), SLURM_TEST_DIR (the
# cluster's folder, /tmp/diffinv-slurm), KEEP_SLURM, KEEP_WORK (keep the
# work folder), SLURM_SKIP_IF_UNAVAILABLE=1 (CI: a cluster that cannot start
# on the machine is a loud skip, not a failure; once it runs, every check
# fails the target as usual).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
BIN=${BIN:-bin/diffinv}
SHARDS=${SHARDS:-3}
TIMEOUT=${SLURM_TIMEOUT:-600}
FILE=scripts/slurm/test-experiment.yaml
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
array="" report=""
cleanup() {
  rc=$?
  if [ $rc -ne 0 ]; then
    [ -n "$array$report" ] && scancel $array $report 2>/dev/null || true
    for f in "$W"/slurm*/slurm/logs/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  fi
  if [ "$started" = 1 ] && [ "${KEEP_SLURM:-0}" != 1 ]; then bash scripts/slurm/stop.sh; fi
  if [ $rc -eq 0 ] && [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$W"; else echo "test-slurm: work folder kept: $W" >&2; fi
  exit $rc
}
trap cleanup EXIT

# The data: the MNIST test files where the model's config says (data.dir,
# ../shared/data/mnist), else 4 generated digits (any images will do: both
# runs read the same ones), given to every diffinv process (the jobs too:
# sbatch passes the environment on) by DIFFINV_DATA_DIR.
mnist=${DIFFINV_DATA_DIR:-../shared/data/mnist}
if [ ! -e "$mnist/t10k-images-idx3-ubyte.gz" ] && [ ! -e "$mnist/t10k-images-idx3-ubyte" ]; then
  echo "test-slurm: no MNIST test files in $mnist; generating 4 random 28×28 images in $W/mnist"
  mkdir -p "$W/mnist"
  { printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x1c\x00\x00\x00\x1c'; head -c 3136 /dev/urandom; } > "$W/mnist/t10k-images-idx3-ubyte"
  printf '\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02\x03\x04' > "$W/mnist/t10k-labels-idx1-ubyte"
  export DIFFINV_DATA_DIR=$W/mnist
fi

# The array of shards and the report job, into a results folder given
# relatively (as an experiment file's output: is) and with a blank and a %
# in its name: the #SBATCH lines must hold such paths.
s="$W/slurm out 100%"
rel=$(realpath -m --relative-to=. "$s")
echo "test-slurm: submitting $FILE as $SHARDS shards into $rel"
sub=$("$BIN" experiment slurm "$FILE" --out "$rel" --shards "$SHARDS" --cpus 1 --mem 1G \
  --partition debug --time 00:10:00 --submit 2>&1) || { echo "$sub" >&2; fail "diffinv experiment slurm --submit failed"; }
echo "$sub"
read -r array report < <(echo "$sub" | sed -n 's/^submitted array \([0-9]*\) .* report job \([0-9]*\)$/\1 \2/p')
[ -n "$array" ] && [ -n "$report" ] || fail "could not read the job ids from submit.sh's output (want 'submitted array N (...) and report job M')"

# Wait until neither job is queued or running.
deadline=$(( $(date +%s) + TIMEOUT ))
while [ -n "$(squeue -h -j "$array,$report" -o %i 2>/dev/null)" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    squeue -j "$array,$report" >&2 || true
    fail "the jobs did not finish in $TIMEOUT s (SLURM_TIMEOUT); squeue above, node: $(sinfo -h -N -o '%N %t' 2>&1)"
  fi
  sleep 2
done
# Their final states (slurmctld keeps finished jobs for MinJobAge = 600 s).
states=$(scontrol -o show job "$array" 2>&1; scontrol -o show job "$report" 2>&1)
bad=$(echo "$states" | grep -o 'JobId=[0-9]* .*JobState=[A-Z_]*' | grep -v 'JobState=COMPLETED' | sed 's/ .*JobState=/ /' || true)
ntasks=$(echo "$states" | grep -c "ArrayJobId=$array " || true)
[ -z "$bad" ] || fail "jobs did not complete: $bad (logs in $s/slurm/logs; a launch failure is in $D/log/slurmd.log)"
[ "$ntasks" -eq "$SHARDS" ] || fail "the array $array ran $ntasks tasks, want $SHARDS"
echo "test-slurm: array $array ($ntasks tasks) and report job $report COMPLETED"

# The same experiment locally, in one process.
"$BIN" experiment run "$FILE" --out "$W/local" >"$W/local.log" 2>&1 || { tail -20 "$W/local.log" >&2; fail "the local experiment run failed (log $W/local.log)"; }

# Compare: reports and images byte for byte, cell results without timings.
l=$W/local
for f in results.csv table.md; do
  [ -s "$s/$f" ] || fail "$s/$f is missing or empty after the Slurm run"
done
(cd "$l" && find . -type f \( -name '*.csv' -o -name '*.md' -o -name '*.png' -o -name '*.json' \) | sort) > "$W/files.local"
(cd "$s" && find . -path ./slurm -prune -o -type f \( -name '*.csv' -o -name '*.md' -o -name '*.png' -o -name '*.json' \) -print | sort) > "$W/files.slurm"
diff -u "$W/files.local" "$W/files.slurm" >&2 || fail "the Slurm run wrote other files than the local run (diff above: - local, + slurm)"
n=0
while read -r f; do
  case $f in
    *.json) diff -u <(grep -v -E '"(wall_)?seconds":' "$l/$f") <(grep -v -E '"(wall_)?seconds":' "$s/$f") >&2 ||
              fail "$f differs (apart from timings) between the local run and the Slurm run (diff above)" ;;
    *.csv|*.md) diff -u "$l/$f" "$s/$f" >&2 || fail "$f differs between the local run and the Slurm run (diff above)" ;;
    *) cmp "$l/$f" "$s/$f" >&2 || fail "$f differs between the local run and the Slurm run" ;;
  esac
  n=$((n+1))
done < "$W/files.local"
echo "test-slurm: $n files equal to the local run's (results.csv, table.md, grids, cells)"

# Status: every cell done.
st=$("$BIN" experiment status "$FILE" --out "$rel" 2>&1) || { echo "$st" >&2; fail "diffinv experiment status failed"; }
echo "$st"
line=$(echo "$st" | grep '^experiment slurm-test ')
cells=$(echo "$line" | sed -n 's/.*: \([0-9]*\) cells: .*/\1/p')
echo "$line" | grep -q ": $cells cells: $cells done, 0 running, 0 abandoned, 0 left" ||
  fail "experiment status does not count every cell done: $line"
echo "test-slurm: PASS in $(( $(date +%s) - t0 )) s ($cells cells, $SHARDS shards)"
