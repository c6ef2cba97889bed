#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for `make test-slurm`:
# Debian's slurm-wlm (22.05: slurmctld, slurmd, slurm-client) and munge,
# installed when missing; a minimal slurm.conf (this host, its CPUs and
# memory, one partition `debug`, no cgroups, no accounting database) with its
# state, spool and log files under $SLURM_TEST_DIR (default
# /tmp/diffinv-slurm), so the system's own Slurm files are not touched.
# Daemons start directly (no systemd), as root. Idempotent: with the cluster
# up it only checks it. Waits until sinfo shows the node idle.
#
# Use the cluster with: export SLURM_CONF=$SLURM_TEST_DIR/slurm.conf
# Stop it with scripts/slurm/stop.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
D=${SLURM_TEST_DIR:-/tmp/diffinv-slurm}
export SLURM_CONF=$D/slurm.conf
fail() { echo "slurm start: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  # It installs packages and starts slurmctld, slurmd and munged as root.
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n SLURM_TEST_DIR="$D" bash "$0" "$@"
  fi
  fail "must run as root, or with sudo without a password (it installs slurm-wlm and munge and starts slurmctld, slurmd and munged)"
fi

# 1. Packages.
bash "$here/../setup.sh" slurmctld slurmd slurm-client munge ||
  fail "could not install the Debian packages slurmctld slurmd slurm-client munge (see the lines above and /tmp/diffinv-setup.log)"
for b in slurmctld slurmd sbatch squeue sinfo scontrol munged; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || fail "$b not found after installing the packages"
done
PATH=$PATH:/usr/sbin

# 2. munge: a key if none, then munged (as the munge user).
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    echo "slurm start: creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey -c -f -k /etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  # A stale socket or pid file of a dead munged blocks a new one.
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
  echo "slurm start: starting munged"
  runuser -u munge -- /usr/sbin/munged ||
    fail "munged did not start (log: /var/log/munge/munged.log)"
  # stop.sh stops munged only when this script started it.
  mkdir -p "$D" && touch "$D/munged.started"
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
  munge -n | unmunge >/dev/null || fail "munge does not work after starting munged (log: /var/log/munge/munged.log)"
fi

# 3. slurm.conf (rewritten only when the cluster is not running).
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
host=$(hostname -s)
if ! alive "$D/slurmctld.pid" && ! alive "$D/slurmd.pid"; then
  mkdir -p "$D/state" "$D/spool" "$D/log"
  # This host's CPUs, sockets and memory as slurmd sees them (a node
  # whose slurm.conf claims more than it has is refused).
  node=$(slurmd -C 2>/dev/null | grep '^NodeName=') || fail "slurmd -C could not describe this node"
  cat > "$D/slurm.conf" <<CONF
# Single-node test cluster written by scripts/slurm/start.sh.
ClusterName=diffinv-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
SlurmdTimeout=60
MpiDefault=none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
fi

# 4. Daemons.
if ! alive "$D/slurmctld.pid"; then
  echo "slurm start: starting slurmctld (log: $D/log/slurmctld.log)"
  # -i: ignore state left by an earlier cluster in $D (its jobs are gone).
  slurmctld -i -f "$SLURM_CONF" || fail "slurmctld did not start (log: $D/log/slurmctld.log)"
fi
for _ in $(seq 30); do scontrol ping >/dev/null 2>&1 && break; sleep 1; done
scontrol ping 2>&1 | grep -q UP || {
  tail -20 "$D/log/slurmctld.log" >&2 2>/dev/null
  fail "slurmctld does not answer scontrol ping (log: $D/log/slurmctld.log)"
}
if ! alive "$D/slurmd.pid"; then
  echo "slurm start: starting slurmd (log: $D/log/slurmd.log)"
  slurmd -f "$SLURM_CONF" || fail "slurmd did not start (log: $D/log/slurmd.log)"
fi

# 5. Wait for the node to be idle (or mixed/allocated with jobs on it).
state=""
for _ in $(seq 60); do
  state=$(sinfo -h -N -n "$host" -o %t 2>/dev/null | head -1)
  case $state in idle|mix|alloc) break ;; esac
  # A node left down or drained by an earlier run: resume it.
  case $state in down*|drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;; esac
  sleep 1
done
case $state in
  idle|mix|alloc) echo "slurm start: node $host is $state (SLURM_CONF=$SLURM_CONF)" ;;
  *) tail -20 "$D/log/slurmd.log" >&2 2>/dev/null
     fail "node $host is '${state:-unknown}', not idle, after 60 s (logs: $D/log/slurmd.log, $D/log/slurmctld.log; sinfo -R says: $(sinfo -h -R 2>/dev/null))" ;;
esac
