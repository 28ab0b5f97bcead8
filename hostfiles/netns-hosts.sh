#!/usr/bin/env bash
# Two "hosts" on one machine, for trying a multi-node launch without a cluster:
# two network namespaces joined by a veth pair, each with its own address in
# the loopback range (127.100.0.1 and 127.100.0.2; never a private or public
# range), and an rsh agent that "logs in" with `ip netns exec` instead of ssh.
#
#   sudo hostfiles/netns-hosts.sh up          # creates sccam-h1 and sccam-h2
#   sudo ip netns exec sccam-h1 mpirun --hostfile hostfiles/netns-two-hosts -np 2 \
#       --mca plm_rsh_agent "$PWD/hostfiles/netns-hosts.sh agent" \
#       --mca btl tcp,self --mca btl_tcp_if_include 127.100.0.0/24 \
#       --mca oob_tcp_if_include 127.100.0.0/24 --bind-to none \
#       .build/release/sccam env --check-collectives
#   sudo hostfiles/netns-hosts.sh down        # removes them again
#
# mpirun runs inside the first namespace (its host, 127.100.0.1, is then
# local); the agent starts Open MPI's daemon for 127.100.0.2 inside the second,
# under a host name of its own (a UTS namespace), as a real second node would
# be. Both see the same files, as nodes with a shared file system do. Needs
# root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2.
set -euo pipefail
PREFIX=${SCCAM_NETNS_PREFIX:-sccam-h}

up() {
    down 2>/dev/null || true
    ip netns add "${PREFIX}1"
    ip netns add "${PREFIX}2"
    ip link add "${PREFIX}1-veth" type veth peer name "${PREFIX}2-veth"
    for n in 1 2; do
        ns="${PREFIX}$n"
        ip link set "${PREFIX}$n-veth" netns "$ns"
        # lo keeps 127.0.0.1 only (/32): a /8 on lo would claim 127.100.0.x as local.
        ip -n "$ns" link set lo up
        ip -n "$ns" addr del 127.0.0.1/8 dev lo 2>/dev/null || true
        ip -n "$ns" addr add 127.0.0.1/32 dev lo 2>/dev/null || true
        ip -n "$ns" addr add "127.100.0.$n/24" dev "${PREFIX}$n-veth"
        ip -n "$ns" link set "${PREFIX}$n-veth" up
        # Loopback-range addresses on a real interface need route_localnet.
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.route_localnet=1
        ip netns exec "$ns" sysctl -qw "net.ipv4.conf.${PREFIX}$n-veth.route_localnet=1"
    done
}

down() {
    for n in 1 2; do ip netns del "${PREFIX}$n" 2>/dev/null || true; done
    ip link del "${PREFIX}1-veth" 2>/dev/null || true
}

# Called by mpirun as `AGENT [options] HOST COMMAND...`, like ssh.
agent() {
    while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
    host=$1; shift
    case "$host" in
        127.100.0.1|"${PREFIX}1") ns="${PREFIX}1" ;;
        127.100.0.2|"${PREFIX}2") ns="${PREFIX}2" ;;
        *) echo "netns-hosts.sh: unknown host $host" >&2; exit 255 ;;
    esac
    exec ip netns exec "$ns" unshare --uts /bin/sh -c 'hostname "$0" && exec /bin/sh -c "$1"' "$ns" "$*"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    agent) shift; agent "$@" ;;
    *) echo "usage: $0 up | down | agent HOST COMMAND..." >&2; exit 2 ;;
esac
