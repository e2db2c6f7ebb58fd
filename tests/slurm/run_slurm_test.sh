#!/usr/bin/env bash
# Real-Slurm test of `patchbay slurm` / `run --shard` / `merge`: starts a one-node Slurm on
# this machine (munged, slurmctld, slurmd; state, logs and sockets under WORK), submits the
# generated job array for a 3-run sweep in 2 shards plus the dependent merge job, waits, and
# checks that every run of the merged results is COMPLETED with its metrics.
#
#   tests/slurm/run_slurm_test.sh build/patchbay WORK      (as root; ctest -L slurm)
#
# Needs root (daemons, apt-get). Installs Debian's slurm-wlm and munge when missing. Every
# way it cannot run is a failure that says why (with the daemons' log lines), never a pass.
# It stops only the daemons it started (by their pid files) and cancels only its own jobs.
set -uo pipefail

PATCHBAY=${1:?usage: run_slurm_test.sh PATCHBAY_BINARY WORK_DIR}
WORK=${2:?usage: run_slurm_test.sh PATCHBAY_BINARY WORK_DIR}
PATCHBAY=$(readlink -f "$PATCHBAY")
START=$(date +%s)
# Ports of our own, so a real Slurm on this machine (6817/6818) is left alone.
CTLD_PORT=${PATCHBAY_SLURM_TEST_CTLD_PORT:-16817}
SLURMD_PORT=${PATCHBAY_SLURM_TEST_SLURMD_PORT:-16818}
JOB_TIMEOUT=${PATCHBAY_SLURM_TEST_TIMEOUT:-600}

say() { echo "slurm test: $*"; }
fail() {
  echo "slurm test: FAILED: $*" >&2
  exit 1
}
show_logs() {
  for f in "$WORK"/log/munged.log "$WORK"/log/slurmctld.log "$WORK"/log/slurmd.log; do
    [[ -s $f ]] || continue
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2
  done
}

[[ -x $PATCHBAY ]] || fail "no patchbay binary at '$PATCHBAY'; build it first (cmake --build build)"
[[ $(id -u) -eq 0 ]] || fail "must run as root: it installs slurm-wlm/munge and starts munged, slurmctld and slurmd (run: sudo ctest --test-dir build -L slurm)"

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
   ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends slurm-wlm munge >"$WORK.apt.log" 2>&1; then
    apt-get update >>"$WORK.apt.log" 2>&1
    apt-get install -y --no-install-recommends slurm-wlm munge >>"$WORK.apt.log" 2>&1 ||
      { tail -n 20 "$WORK.apt.log" >&2; fail "apt-get install slurm-wlm munge failed (log above, all of it in $WORK.apt.log)"; }
  fi
fi
for tool in slurmctld slurmd sbatch squeue sinfo scontrol scancel munged mungekey; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing after installing slurm-wlm and munge"
done
say "$(slurmctld -V), $(munged --version 2>&1 | head -n 1)"

# 2. A fresh work folder. A previous run's daemons (pid files in it) are stopped first.
stop_daemon() {  # name pidfile
  local pid
  [[ -s $2 ]] || return 0
  pid=$(cat "$2")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -q "$1" "/proc/$pid/comm" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$2"
}
stop_all() {
  stop_daemon slurmd "$WORK/run/slurmd.pid"
  stop_daemon slurmctld "$WORK/run/slurmctld.pid"
  stop_daemon munged "$WORK/run/munged.pid"
}
[[ -d $WORK ]] && stop_all
rm -rf "$WORK"
mkdir -p "$WORK"/{munge,key,log,run,state/ctld,state/slurmd,jobs}
# munged wants its key private and its socket's folder open to everyone (clients connect).
chmod 700 "$WORK/key"
chmod 755 "$WORK" "$WORK/munge"
export SLURM_CONF=$WORK/slurm.conf
ARRAY_JOB="" MERGE_JOB=""
cleanup() {
  local rc=$?
  if [[ -n $ARRAY_JOB$MERGE_JOB ]] && [[ -s $WORK/run/slurmctld.pid ]]; then
    scancel $ARRAY_JOB $MERGE_JOB 2>/dev/null
  fi
  stop_all
  say "took $(($(date +%s) - START)) s"
  exit $rc
}
trap cleanup EXIT

# 3. munged with a key and socket of its own.
mungekey --create --keyfile="$WORK/key/munge.key" >/dev/null 2>&1 ||
  dd if=/dev/urandom of="$WORK/key/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/key/munge.key"
munged --key-file="$WORK/key/munge.key" --socket="$WORK/munge/munge.socket" \
  --pid-file="$WORK/run/munged.pid" --log-file="$WORK/log/munged.log" \
  --seed-file="$WORK/key/munge.seed" >"$WORK/log/munged.out" 2>&1 ||
  { cat "$WORK/log/munged.out" >&2; show_logs; fail "munged did not start (its messages above)"; }
for _ in $(seq 50); do [[ -S $WORK/munge/munge.socket ]] && break; sleep 0.1; done
munge --socket="$WORK/munge/munge.socket" -n | unmunge --socket="$WORK/munge/munge.socket" >/dev/null ||
  { show_logs; fail "munged is not answering on $WORK/munge/munge.socket"; }

# 4. A one-node cluster on localhost: no cgroups (no systemd here), no accounting.
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm/run_slurm_test.sh: a one-node Slurm for the test, nothing else.
ClusterName=patchbaytest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge/munge.socket
StateSaveLocation=$WORK/state/ctld
SlurmdSpoolDir=$WORK/state/slurmd
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# Slurm 23.02 and later start their cgroup plugin even with the settings above, and stop
# where /sys/fs/cgroup is not mounted (a container, a chroot); they can be told not to.
# 22.05 (Debian 12) has no such value and reads no cgroup.conf here.
read -r major minor <<<"$(slurmd -V | grep -oE '[0-9]+\.[0-9]+' | head -n 1 | tr . ' ')"
if ((10#$major > 23 || (10#$major == 23 && 10#$minor >= 2))); then
  echo "CgroupPlugin=disabled" >"$WORK/cgroup.conf"
fi

slurmctld -f "$SLURM_CONF" >"$WORK/log/slurmctld.out" 2>&1 ||
  { cat "$WORK/log/slurmctld.out" >&2; show_logs; fail "slurmctld did not start (its log above)"; }
slurmd -f "$SLURM_CONF" >"$WORK/log/slurmd.out" 2>&1 ||
  { cat "$WORK/log/slurmd.out" >&2; show_logs; fail "slurmd did not start (its log above)"; }
# Wait for the node to be idle. A daemon that exits (a port in use, a bad configuration) is
# reported at once with its log; sinfo is bounded because it waits for a controller that
# accepts connections but does not answer.
daemon_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
started=$(date +%s)
state=""
while :; do
  state=$(timeout 5 sinfo -h -N -n "$HOST" -o '%t' 2>/dev/null | head -n 1)
  [[ $state == idle ]] && break
  if (($(date +%s) - started >= 5)); then
    for d in slurmctld slurmd; do
      daemon_alive "$WORK/run/$d.pid" || { show_logs; fail "$d is not running (it exited; its log above)"; }
    done
  fi
  if (($(date +%s) - started >= 60)); then
    timeout 5 scontrol show node "$HOST" >&2 2>&1
    show_logs
    fail "node '$HOST' is '${state:-not known}' after 60 s, not idle (logs above)"
  fi
  sleep 1
done
say "slurm is up: node $HOST idle, $CPUS CPUs, $MEM_MB MB ($(($(date +%s) - START)) s so far)"

# 5. A tiny sweep: 3 runs (seeds) of a linear probe on a generated 3-word keyword set.
"$PATCHBAY" data keywords --out "$WORK/keywords" --per-class 8 --words yes,no,up --seed 3 >"$WORK/log/data.out" 2>&1 ||
  { cat "$WORK/log/data.out" >&2; fail "patchbay data keywords failed"; }
cat >"$WORK/tiny.toml" <<EOF
[experiment]
name = "slurm_tiny"

[dataset]
plugin = "speech_commands"
root = "$WORK/keywords"

[frontend]
num_mel_bins = 32
target_frames = 100

[patcher]
plugin = "fftp"
patch_frames = 16
stride = 8

[backbone]
plugin = "linear_probe"
embed_dim = 16

[train]
epochs = 2
batch_size = 8
threads = 1

[sweep]
seeds = [0, 1, 2]
EOF
cd "$WORK" || fail "cannot enter $WORK"
"$PATCHBAY" slurm "$WORK/tiny.toml" --shards 2 --time 00:10:00 --cpus-per-task 1 \
  --out "$WORK/jobs" --results "$WORK/results/slurm_tiny.h5" || fail "patchbay slurm failed"
grep -q -- '--array=0-1' "$WORK/jobs/array.sbatch" || fail "array.sbatch has no --array=0-1 line"

submitted=$(sh "$WORK/jobs/submit.sh") || fail "submit.sh failed: $submitted"
echo "$submitted"
ARRAY_JOB=$(sed -n 's/^array job \([0-9]*\) .*/\1/p' <<<"$submitted")
MERGE_JOB=$(sed -n 's/.*merge job \([0-9]*\).*/\1/p' <<<"$submitted")
[[ -n $ARRAY_JOB && -n $MERGE_JOB ]] || fail "cannot read the job ids from submit.sh's output"

# 6. Wait for both jobs to leave the queue.
deadline=$(($(date +%s) + JOB_TIMEOUT))
while [[ -n $(timeout 10 squeue -h -j "$ARRAY_JOB,$MERGE_JOB" -o '%i' 2>/dev/null) ]]; do
  if (($(date +%s) > deadline)); then
    squeue -j "$ARRAY_JOB,$MERGE_JOB" >&2
    tail -n 20 "$WORK"/jobs/logs/*.out >&2 2>/dev/null
    show_logs
    fail "jobs $ARRAY_JOB (array) and $MERGE_JOB (merge) still queued or running after $JOB_TIMEOUT s"
  fi
  sleep 2
done
say "jobs done after $(($(date +%s) - START)) s"

# 7. Every job ended COMPLETED (array tasks and merge), then the results themselves.
states=$(timeout 10 scontrol -o show job "$ARRAY_JOB" 2>/dev/null; timeout 10 scontrol -o show job "$MERGE_JOB" 2>/dev/null)
bad=$(grep -o 'JobId=[0-9]* .*JobState=[A-Z_]*' <<<"$states" | grep -v 'JobState=COMPLETED' || true)
if [[ -n $bad || $(grep -c 'JobState=COMPLETED' <<<"$states") -ne 3 ]]; then
  echo "$states" >&2
  for f in "$WORK"/jobs/logs/*.out; do echo "---- $f" >&2; tail -n 30 "$f" >&2; done
  show_logs
  fail "not every job (2 array tasks + merge) ended COMPLETED"
fi
for f in "$WORK"/jobs/logs/*.out; do echo "---- $f"; cat "$f"; done

RESULTS=$WORK/results/slurm_tiny.h5
[[ -f $RESULTS ]] || fail "the merge job wrote no $RESULTS"
/usr/bin/python3 - "$RESULTS" <<'EOF' || fail "the merged results are incomplete (above)"
import math
import sys

import h5py

with h5py.File(sys.argv[1], "r") as f:
    ids = list(f["sweep/plan/id"].asstr()[()])
    assert len(ids) == 3, f"expected 3 planned runs, found {ids}"
    for run_id in ids:
        run = f["runs"][run_id]
        status = run.attrs["status"]
        acc = run["final"].attrs.get("test_accuracy", float("nan"))
        macs = run["final"].attrs.get("paper_macs", float("nan"))
        epochs = len(run["curves/epoch"])
        print(f"{run_id}: {status}, test_accuracy {acc:.3f}, paper_macs {macs:.0f}, {epochs} epochs, host {run.attrs['host']}")
        assert status == "COMPLETED", f"{run_id} is {status}: {run.attrs['reason']}"
        assert math.isfinite(acc) and 0 <= acc <= 1 and macs > 0 and epochs == 2, f"{run_id}: metrics missing"
    assert "shard" not in f["sweep"].attrs, "the merged file still says it is a shard"
EOF
"$PATCHBAY" report "$RESULTS" --no-plots >"$WORK/log/report.out" 2>&1 ||
  { cat "$WORK/log/report.out" >&2; fail "patchbay report of the merged results failed"; }
say "PASSED: 3 runs COMPLETED through a 2-task job array and a dependent merge job"
