#!/usr/bin/env bash
# Starts a throwaway single-node Slurm cluster on this machine (munge,
# slurmctld and slurmd with their own configuration, state and sockets in a
# temporary folder), submits the project's slurm/demo.sbatch with a tiny demo
# on 2 ranks, waits for it, checks its outputs, and stops every daemon it
# started by PID. Needs root and Debian's slurm-wlm and munge packages.
#
#   bash slurm/test-local-cluster.sh [path/to/sccam]      (default .build/release/sccam)
#
# LAUNCHERS="srun mpirun" (default) runs the job once per launcher (none: no
# such run); SKIP_REQUEUE=1 leaves out the pre-emption and requeue check.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
sccam=$(realpath "${1:-.build/release/sccam}")
[ -x "$sccam" ] || { echo "no sccam binary at $sccam: build with swift build -c release" >&2; exit 1; }
for tool in munged slurmctld slurmd sbatch sinfo; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y slurm-wlm munge" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root: the Slurm daemons of this test run as root" >&2; exit 1; }

tmp=$(mktemp -d /tmp/sccam-slurm-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    [ "${SCCAM_KEEP_TEST_OUTPUT:-0}" = 1 ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "slurm test FAILED: $1" >&2
    for log in "$tmp"/*.log "$tmp"/work-*/job.out; do [ -f "$log" ] && { echo "--- $log"; tail -30 "$log"; }; done >&2
    exit 1
}

# munge with its own socket and key, so a system munged (if any) is untouched.
dd if=/dev/urandom of="$tmp/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge.key"
mkdir -p "$tmp/munge"
munged --force --socket="$tmp/munge/munge.socket" --key-file="$tmp/munge.key" --pid-file="$tmp/munged.pid" \
    --log-file="$tmp/munged.log" --seed-file="$tmp/munge.seed"
for _ in $(seq 50); do [ -s "$tmp/munged.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$tmp/munged.pid")")

host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$tmp/state" "$tmp/spool"
cat > "$tmp/slurm.conf" <<CONF
ClusterName=sccamtest
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$tmp/slurm.conf
# Don't let an outer Slurm or MPI job leak into the test's jobs.
for v in $(env | grep -oE '^(SLURM_[A-Z_]+|OMPI_[A-Z_]+|PMIX_[A-Z_]+|PMI_[A-Z_]+)' || true); do
    [ "$v" = SLURM_CONF ] || unset "$v"
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

slurmctld -i
slurmd
for _ in $(seq 100); do [ -s "$tmp/slurmctld.pid" ] && [ -s "$tmp/slurmd.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$tmp/slurmctld.pid")" "$(cat "$tmp/slurmd.pid")")
state=""
for _ in $(seq 120); do
    state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
    [ "$state" = idle ] && break
    sleep 0.5
done
[ "$state" = idle ] || fail "the node did not become idle (state: '${state:-none}')"
echo "slurm test: cluster up ($host, $cpus CPUs)"

for launcher in ${LAUNCHERS:-srun mpirun}; do
    [ "$launcher" = none ] && continue
    work=$tmp/work-$launcher
    mkdir -p "$work"
    extra=(--export=ALL,LAUNCHER=$launcher,SCCAM=$sccam,WORK=$work/demo)
    start=$(date +%s)
    # --wait returns the job's exit code once it ends.
    (cd "$repo" && sbatch --wait --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=00:20:00 \
        --output="$work/job.out" "${extra[@]}" slurm/demo.sbatch \
        --images 16 --image-size 32 --rounds 1 --baseline-epochs 1 --epochs 1 --n-init 2 --scales 1 --log-every 1 \
        --aff-epochs 1 --seg-iterations 2) \
        || fail "the $launcher job failed"
    grep -q "pipeline finished" "$work/job.out" || fail "the $launcher job printed no 'pipeline finished'"
    grep -q "on 2 rank(s)" "$work/job.out" || fail "the $launcher job did not run on 2 ranks"
    for file in run.json weights/R0_ep0.safetensors weights/R1_ep0.safetensors labels/R1_subcategories.tsv infer/R1/scores.json; do
        [ -s "$work/demo/$file" ] || fail "the $launcher job did not write $file"
    done
    miou=$(sed -nE 's/^  "miou" : ([0-9.eE+-]+),?$/\1/p' "$work/demo/infer/R1/scores.json")
    awk -v m="$miou" 'BEGIN { exit !(m != "" && m + 0 >= 0 && m + 0 <= 1) }' || fail "mIoU '$miou' is not a number in [0, 1]"
    echo "slurm test: $launcher job passed in $(( $(date +%s) - start )) s (round-1 mIoU $miou)"
done
# Pre-emption: SIGUSR1 to the batch shell in the middle of training (what
# --signal=B:USR1@... sends before the time limit) must checkpoint, requeue the
# job, and the requeued run must resume and finish.
if [ "${SKIP_REQUEUE:-0}" != 1 ]; then
    work=$tmp/work-requeue
    mkdir -p "$work"
    start=$(date +%s)
    job=$(cd "$repo" && sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=00:20:00 \
        --output="$work/job.out" --export=ALL,LAUNCHER=srun,SCCAM=$sccam,WORK=$work/demo slurm/demo.sbatch \
        --images 24 --image-size 32 --rounds 1 --baseline-epochs 40 --epochs 1 --n-init 2 --scales 1 --log-every 1 \
        --aff-epochs 1 --seg-iterations 2)
    signalled=0
    for _ in $(seq 1200); do
        if grep -q "^step 5/" "$work/job.out" 2>/dev/null; then
            scancel --signal=USR1 --batch "$job" && signalled=1
            break
        fi
        sleep 0.1
    done
    [ "$signalled" = 1 ] || fail "round 0's training never reached step 5 in the requeue job"
    held=0
    for _ in $(seq 900); do
        state=$(squeue -h -j "$job" -o %T:%r 2>/dev/null || true)
        [ -z "$state" ] && break
        # Slurm holds a requeued job back (reason BeginTime, about two minutes); a test need not
        # wait that long. But starting it at once can race the old instance's teardown on the
        # node ("Job N already killed, do not launch batch job": the job is then lost), so the
        # hold is cut short only after a few seconds of it.
        case "$state" in
            PENDING:BeginTime)
                held=$((held + 1))
                [ "$held" -ge 5 ] && { scontrol update JobId="$job" StartTime=now >/dev/null 2>&1 || true; } ;;
            *) held=0 ;;
        esac
        sleep 1
    done
    [ -z "$state" ] || fail "the requeued job did not finish (state $state)"
    grep -q "requeueing job $job" "$work/job.out" || fail "the job did not requeue itself after SIGUSR1"
    grep -q "(restart 1)" "$work/job.out" || fail "the job did not run again after the requeue"
    grep -q "resuming" "$work/job.out" || fail "the requeued run did not resume training from the checkpoint"
    grep -q "pipeline finished" "$work/job.out" || fail "the requeued run did not finish the pipeline"
    [ -s "$work/demo/infer/R1/scores.json" ] || fail "the requeued run wrote no scores"
    echo "slurm test: SIGUSR1 checkpointed, requeued and resumed in $(( $(date +%s) - start )) s"
fi
echo "slurm test: passed"
