#!/usr/bin/env bash
# A throw-away one-node Slurm cluster in a folder, to try the Slurm scripts on
# one machine and for the tests: munged (own key and socket) + slurmctld +
# slurmd, all as the calling user (root: SlurmUser=root), no cgroups
# (proctrack/linuxproc, task/none), no accounting database.
#   scripts/slurm/local_cluster.sh start DIR [PORT]   # prints SLURM_CONF=...
#   export SLURM_CONF=DIR/slurm.conf; sbatch ...; squeue
#   scripts/slurm/local_cluster.sh stop DIR
# Needs Debian's slurm-wlm and munge (scripts/packages.txt).
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2
fi
dir="$(mkdir -p "$dir" && cd "$dir" && pwd)"

stop() {
  if [[ -f "$dir/slurm.conf" ]]; then
    SLURM_CONF="$dir/slurm.conf" scontrol shutdown >/dev/null 2>&1 || true
  fi
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    for _ in $(seq 50); do
      [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || break
      kill "$pid" 2>/dev/null || true; sleep 0.1
    done
    rm -f "$pidfile"
  done
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac

for prog in munged mungekey slurmctld slurmd sbatch scontrol; do
  command -v "$prog" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$prog" >/dev/null || { echo "local_cluster: '$prog' not found (apt-get install slurm-wlm munge)" >&2; exit 3; }
done
port="${3:-$((20000 + ($$ % 10000) * 2))}"
host="$(hostname -s)"
cpus="$(nproc)"
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 711 "$dir/munge"

# munge: a fresh key, its own socket.
[[ -f "$dir/munge/munge.key" ]] || mungekey --create --keyfile="$dir/munge/munge.key" --bits=1024
chmod 600 "$dir/munge/munge.key"
munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
  --seed-file="$dir/munge/munged.seed" --force

cat > "$dir/slurm.conf" <<CONF
ClusterName=l2mlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF" -N "$host"
for _ in $(seq 100); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    echo "SLURM_CONF=$SLURM_CONF"; exit 0
  fi
  sleep 0.2
done
echo "local_cluster: the node did not come up; logs in $dir/log" >&2
tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
stop
exit 4
