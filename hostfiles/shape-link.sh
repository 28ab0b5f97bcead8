#!/usr/bin/env bash
# Gives the veth link between the two namespace hosts of netns-hosts.sh a real
# bandwidth, as a cluster's network would have, so that a multi-node run can be
# measured on one machine:
#
#   sudo hostfiles/netns-hosts.sh up
#   sudo hostfiles/shape-link.sh 10gbit     # or 1gbit, 25gbit, any tc rate
#   sudo hostfiles/shape-link.sh show       # what is set now
#   sudo hostfiles/shape-link.sh off        # back to the veth's own speed
#   sudo hostfiles/netns-hosts.sh down      # removes the shaping with the hosts
#
# A token bucket filter (tc tbf) on both ends shapes each direction separately,
# as a full-duplex link is. The burst (4 MB, or 1/100 s of the rate if larger)
# must hold at least one timer tick at the rate, or tbf cannot reach it.
set -euo pipefail
PREFIX=${SCCAM_NETNS_PREFIX:-sccam-h}

ends() { for n in 1 2; do echo "${PREFIX}$n ${PREFIX}$n-veth"; done; }

require_hosts() {
    for n in 1 2; do
        ip netns list | grep -qw "${PREFIX}$n" || { echo "shape-link.sh: no namespace ${PREFIX}$n; run hostfiles/netns-hosts.sh up first" >&2; exit 1; }
    done
}

# Bytes a rate like 10gbit, 500mbit or 1.5gbit carries in 1/100 s.
burst_bytes() {
    local rate=$1 number unit
    number=$(echo "$rate" | sed -E 's/^([0-9.]+).*/\1/')
    unit=$(echo "$rate" | sed -E 's/^[0-9.]+//' | tr 'A-Z' 'a-z')
    case "$unit" in
        gbit) awk -v n="$number" 'BEGIN { printf "%d", n * 1e9 / 8 / 100 }' ;;
        mbit) awk -v n="$number" 'BEGIN { printf "%d", n * 1e6 / 8 / 100 }' ;;
        *) echo "shape-link.sh: give the rate in gbit or mbit, like 10gbit or 500mbit (got $rate)" >&2; exit 2 ;;
    esac
}

case "${1:-}" in
    off)
        require_hosts
        ends | while read -r ns dev; do ip netns exec "$ns" tc qdisc del dev "$dev" root 2>/dev/null || true; done ;;
    show)
        require_hosts
        ends | while read -r ns dev; do echo "$ns: $(ip netns exec "$ns" tc qdisc show dev "$dev" | head -1)"; done ;;
    *[0-9]*bit)
        require_hosts
        burst=$(burst_bytes "$1")
        [ "$burst" -ge $((4 << 20)) ] || burst=$((4 << 20))
        ends | while read -r ns dev; do
            ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "$1" burst "$burst" latency 100ms
        done ;;
    *) echo "usage: $0 RATE (like 10gbit or 1gbit) | off | show" >&2; exit 2 ;;
esac
