#!/usr/bin/env bash
# The gradient exchange's scaling on one 2-core machine (docs/scaling.md):
# 1 rank against 2 ranks x 1 thread on one host, and across the two namespace
# hosts of hostfiles/netns-hosts.sh with their link shaped to 10 and 1 Gbit/s;
# bench train (full width, crop 224, 2 images per rank) and bench allreduce on
# each. As root (namespaces and tc): bash bench/exchange-scaling.sh [SCCAM] [RATES]
set -euo pipefail
cd "$(dirname "$0")/.."
sccam=$(realpath "${1:-.build/release/sccam}")
rates=${2:-"10gbit 1gbit"}
steps=${STEPS:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
images=$(mktemp -d /tmp/sccam-exchange-scaling.XXXXXX)
trap 'hostfiles/netns-hosts.sh down; rm -rf "$images"' EXIT
train="bench train --threads 1 --steps $steps --folder $images"

echo "== 1 rank x 1 thread"
"$sccam" $train --batch 2 | tail -1
echo "== 2 ranks x 1 thread, one host (shared memory)"
mpirun -np 2 --oversubscribe --bind-to none "$sccam" $train --batch 4 | tail -3
mpirun -np 2 --oversubscribe --bind-to none "$sccam" $train --batch 4 --exchange-progress blocking | tail -3
mpirun -np 2 --oversubscribe --bind-to none "$sccam" bench allreduce --threads 1 | tail -16

hostfiles/netns-hosts.sh up
two_hosts() {
    ip netns exec sccam-h1 mpirun --hostfile hostfiles/netns-two-hosts -np 2 \
        --mca plm_rsh_agent "$PWD/hostfiles/netns-hosts.sh agent" \
        --mca btl tcp,self --mca btl_tcp_if_include 127.100.0.0/24 \
        --mca oob_tcp_if_include 127.100.0.0/24 --bind-to none \
        -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM "$sccam" "$@"
}
for rate in $rates; do
    hostfiles/shape-link.sh "$rate"
    echo "== 2 hosts x 1 rank x 1 thread, TCP shaped to $rate"
    two_hosts $train --batch 4 | tail -3
    two_hosts $train --batch 4 --exchange-progress blocking | tail -3
    two_hosts $train --batch 4 --gradient-exchange bf16 | tail -3
    two_hosts bench allreduce --threads 1 --iterations 3 | tail -16
done
hostfiles/netns-hosts.sh down
echo "== 1 rank x 1 thread, again (this machine's own variation)"
"$sccam" $train --batch 2 | tail -1
