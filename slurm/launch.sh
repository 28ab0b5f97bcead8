# Sourced by the sbatch scripts: runs one sccam command over the allocation
# and turns Slurm's time-limit warning into a checkpoint and a requeue.
#
#   run_sccam ARGS...     launches `$SCCAM ARGS... --threads $THREADS` on every task
#
# Variables (all optional):
#   SCCAM     the built binary (default: sccam on PATH)
#   LAUNCHER  srun (default; needs Slurm's PMIx plugin, see `srun --mpi=list`)
#             or mpirun (Open MPI reads the allocation from Slurm itself)
#   THREADS   compute threads per rank (default: --cpus-per-task)
#
# How the requeue works: the sbatch header asks for `--signal=B:USR1@SECONDS`,
# so the batch shell gets SIGUSR1 that long before the time limit. The trap
# forwards it to the launcher, which passes it to every rank: training writes
# WORK/weights/R{r}_partial and exits with code 4 (extraction and inference
# keep their own per-image progress). The script then calls `scontrol
# requeue`; the requeued job runs the same command, which resumes.

SCCAM=${SCCAM:-sccam}
LAUNCHER=${LAUNCHER:-srun}
THREADS=${THREADS:-${SLURM_CPUS_PER_TASK:-1}}
export OPENBLAS_NUM_THREADS=$THREADS

sccam_signalled=0
sccam_child=""
forward_signal() {
    sccam_signalled=1
    echo "sccam job: SIGUSR1 before the time limit; asking the ranks to checkpoint"
    [ -n "$sccam_child" ] && kill -USR1 "$sccam_child" 2>/dev/null || true
}

run_sccam() {
    trap forward_signal USR1
    if [ "$LAUNCHER" = srun ]; then
        # --cpu-bind=cores keeps each task on the CPUs Slurm gave it.
        srun --mpi=pmix --cpu-bind=cores "$SCCAM" "$@" --threads "$THREADS" &
    else
        mpirun --map-by "ppr:${SLURM_NTASKS_PER_NODE:-1}:node:pe=$THREADS" --bind-to core \
            -x OPENBLAS_NUM_THREADS "$SCCAM" "$@" --threads "$THREADS" &
    fi
    sccam_child=$!
    local status=0
    # `wait` returns early when a trapped signal arrives; wait until the launcher is gone.
    while true; do
        wait "$sccam_child" && status=0 || status=$?
        kill -0 "$sccam_child" 2>/dev/null || break
    done
    trap - USR1
    if [ "$status" -ne 0 ] && { [ "$status" -eq 4 ] || [ "$sccam_signalled" -eq 1 ]; }; then
        if [ -n "${SLURM_JOB_ID:-}" ] && [ "${SCCAM_NO_REQUEUE:-0}" != 1 ]; then
            echo "sccam job: stopped with a checkpoint (exit $status); requeueing job $SLURM_JOB_ID to continue"
            scontrol requeue "$SLURM_JOB_ID"
            exit 0
        fi
    fi
    return "$status"
}
