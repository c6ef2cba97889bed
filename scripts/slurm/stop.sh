#!/usr/bin/env bash
# Stops the single-node Slurm cluster of scripts/slurm/start.sh (slurmd,
# slurmctld, by their pid files under $SLURM_TEST_DIR) and munged when
# start.sh started it (a munged that was running before is left alone;
# KEEP_MUNGE=1 leaves it running too). Idempotent: stopping a stopped
# cluster does nothing.
set -uo pipefail
D=${SLURM_TEST_DIR:-/tmp/diffinv-slurm}
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  exec sudo -n SLURM_TEST_DIR="$D" KEEP_MUNGE="${KEEP_MUNGE:-0}" bash "$0" "$@"
fi
stop() { # name pidfile
  local pid
  [ -s "$2" ] || return 0
  pid=$(cat "$2")
  kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }
  echo "slurm stop: stopping $1 (pid $pid)"
  kill "$pid"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm stop: $1 (pid $pid) ignored SIGTERM for 15 s; killing it" >&2
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$2"
}
stop slurmd "$D/slurmd.pid"
stop slurmctld "$D/slurmctld.pid"
if [ -e "$D/munged.started" ] && [ "${KEEP_MUNGE:-0}" != 1 ]; then
  stop munged /run/munge/munged.pid
  rm -f "$D/munged.started"
fi
exit 0
