#!/usr/bin/env bash
# The measurements issue 31 asks of a many-core host (AMX, 16 cores), in one
# run of a few minutes, from a release binary packed with
# ../shared/tools/pack-for-host.sh (the host needs neither Swift nor MPI):
#
#   1. what the host computes with (sccam env: ISA, AMX, bf16, Winograd);
#   2. bf16 against fp32 at 2 threads, same binary (bench network, batch 2);
#   3. 1 rank x all cores in bf16 at batch 8 (bench train: images/s);
#   4. the fp32 step and its phases at 1 thread and all cores at batch 8 (the
#      batch of the 6.7x at 16 threads), beside the host's FMA and
#      memory scaling (bench threads).
#
#   bash bench/many-core-host.sh [SCCAM] [OUT]    (defaults: sccam on PATH, ./many-core-host.txt)
# THREADS overrides the core count; STEPS the timed steps per run (default 2).
set -uo pipefail
sccam=${1:-sccam}
out=${2:-many-core-host.txt}
threads=${THREADS:-$(nproc)}
steps=${STEPS:-2}
images=$(mktemp -d /tmp/sccam-many-core.XXXXXX)
trap 'rm -rf "$images"' EXIT
run() {
    echo "== $*" | tee -a "$out"
    local start=$SECONDS
    "$sccam" "$@" 2>&1 | tee -a "$out" | tail -n 25
    echo "(exit ${PIPESTATUS[0]}, $((SECONDS - start)) s)" | tee -a "$out"
}
: >"$out"
echo "host: $(nproc) cores, $threads threads; $(grep -m1 'model name' /proc/cpuinfo)" | tee -a "$out"
run env --probe-seconds 0
run bench network --batches 2 --paths fp32,bf16 --threads 2 --iterations 2
run bench train --precision bf16 --threads "$threads" --batch 8 --steps "$steps" --folder "$images"
run bench threads --thread-counts "1,$threads" --rounds 1 --batch 8 --steps "$steps" --folder "$images"
echo "all output: $out"
