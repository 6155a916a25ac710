#!/usr/bin/env bash
# vcluster.sh: a virtual cluster of N hosts on this machine, for trying and
# testing dltrain across machines without machines.
#
# Each host is a Linux network namespace with one interface, eth0, plugged
# into a bridge that lives in a namespace of its own, so no traffic ever
# touches the machine's real interfaces.  Addresses come from 198.18.0.0/15
# (reserved for network benchmarks, RFC 2544).  Each host gets its own
# hostname through a UTS namespace, entered whenever a command runs there.
# With --rate, each host's link is limited in both directions by a tbf qdisc
# (on eth0 for what the host sends, on its bridge port for what it receives),
# like a NIC of that speed.  Each host also gets its own share of the
# machine's cores (--cpus-per-host, default the cores divided among the
# hosts), as separate machines would: without it Open MPI binds the first
# rank of every host to core 0, so the ranks of different "hosts" share one
# core and compute takes twice as long.
#
#   scripts/vcluster.sh run [--hosts N] [--slots S] [--rate 1gbit] [--name P]
#                           [--cpus-per-host C] -- CMD...
#       creates the cluster, runs CMD in host 0 with these in its environment,
#       and removes the cluster when CMD ends (also on failure or Ctrl-C):
#         VCLUSTER_HOSTFILE  an Open MPI hostfile ("198.18.0.1 slots=S" per host)
#         VCLUSTER_MPIRUN    "mpirun --hostfile ..."; OMPI_MCA_* variables select
#                            the agent below and TCP on the cluster links only
#         VCLUSTER_NAME      the prefix of every namespace (P-h0 .. P-hN-1, P-br)
#       e.g. scripts/vcluster.sh run --hosts 2 --rate 10gbit -- \
#              sh -c '$VCLUSTER_MPIRUN -np 4 build/launch/dltrain train --max-steps 50'
#   scripts/vcluster.sh up|down [--hosts N] [--rate R] [--name P]   (by hand)
#   scripts/vcluster.sh exec --name P HOST_INDEX CMD...   run CMD in a host
#   scripts/vcluster.sh agent HOST CMD...   Open MPI's plm_rsh_agent: like ssh
#       HOST CMD, where HOST is a cluster address; runs CMD in that host.
#
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2, util-linux.
set -euo pipefail

SELF=$(readlink -f "$0")
HOSTS=${VCLUSTER_HOSTS:-2} CPUS_PER_HOST=${VCLUSTER_CPUS_PER_HOST:-0}
SLOTS=2 RATE="" NAME="dlvc$$"
SUBNET=198.18.0  # one /24 per cluster: each cluster has its own bridge namespace

die() { echo "vcluster: $*" >&2; exit 2; }

host_ns() { echo "$NAME-h$1"; }
host_addr() { echo "$SUBNET.$(($1 + 1))"; }

# The cores `run` or `up` may use ("0 1 2 3"), passed on to the agent, which
# runs inside host 0 where only host 0's cores are allowed.
all_cpus() {
    taskset -cp $$ | sed 's/.*: //' | tr ',' '\n' |
        awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) printf "%d ", c }'
}

# Host i's cores: CPUS_PER_HOST of them, host after host, wrapping around
# when the hosts want more cores than there are.
host_cpus() {
    local all per i list=""
    read -ra all <<< "${VCLUSTER_ALL_CPUS:-$(all_cpus)}"
    per=$CPUS_PER_HOST
    (( per > 0 )) || per=$(( ${#all[@]} / HOSTS > 0 ? ${#all[@]} / HOSTS : 1 ))
    for (( i = 0; i < per; i++ )); do
        list+="${list:+,}${all[$(( ($1 * per + i) % ${#all[@]} ))]}"
    done
    echo "$list"
}

# tbf's bucket must hold what the link sends in a few ms of kernel timer
# slack, or the qdisc cannot reach its rate; 4 ms of traffic, at least 64 KiB.
shape() {
    local ns=$1 dev=$2 bits
    case $RATE in
        *gbit) bits=$(( ${RATE%gbit} * 1000000000 )) ;;
        *mbit) bits=$(( ${RATE%mbit} * 1000000 )) ;;
        *) die "--rate: use Nmbit or Ngbit (got '$RATE')" ;;
    esac
    local burst=$(( bits / 8 / 250 ))
    (( burst < 65536 )) && burst=65536
    ip -n "$ns" link set "$dev" gso_max_size 65536 2>/dev/null || true
    tc -n "$ns" qdisc replace dev "$dev" root tbf rate "$RATE" burst "$burst" latency 20ms
}

cluster_up() {
    [[ $HOSTS =~ ^[0-9]+$ ]] && (( HOSTS >= 1 && HOSTS <= 200 )) || die "--hosts: 1 to 200"
    [[ -e /run/netns/$NAME-br ]] && die "a cluster named $NAME exists (vcluster.sh down --name $NAME)"
    ip netns add "$NAME-br"
    ip -n "$NAME-br" link add br0 type bridge
    ip -n "$NAME-br" link set br0 up
    local i ns
    for (( i = 0; i < HOSTS; i++ )); do
        ns=$(host_ns "$i")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$NAME-br"
        ip -n "$NAME-br" link set "p$i" master br0 up
        ip -n "$ns" addr add "$(host_addr "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        if [[ -n $RATE ]]; then
            shape "$ns" eth0
            shape "$NAME-br" "p$i"
        fi
    done
}

# Ends what still runs in the hosts (an Open MPI daemon cut off from mpirun
# lingers), then removes the namespaces, and with them every link.
cluster_down() {
    local ns pid
    for ns in $(ip netns list | awk '{print $1}'); do
        case $ns in
            "$NAME"-h[0-9]*|"$NAME"-br)
                for pid in $(ip netns pids "$ns" 2>/dev/null); do
                    [[ $pid != "$$" ]] && kill -9 "$pid" 2>/dev/null || true
                done
                ip netns del "$ns" 2>/dev/null || true ;;
        esac
    done
}

# Runs a command as host i: its network namespace, and a fresh UTS namespace
# whose hostname is the host's name (what MPI_Get_processor_name reports).
in_host() {
    local i=$1; shift
    exec taskset -c "$(host_cpus "$i")" ip netns exec "$(host_ns "$i")" unshare --uts -- \
        sh -c 'hostname "$0" && exec "$@"' "$(host_ns "$i")" "$@"
}

write_hostfile() {
    local i
    for (( i = 0; i < HOSTS; i++ )); do echo "$(host_addr "$i") slots=$SLOTS"; done > "$1"
}

# Open MPI reads its options from OMPI_MCA_* too: the agent below starts an
# orted in each host, which connects back to mpirun (in host 0) over the
# cluster link; ranks on other hosts talk TCP on that link only, ranks on one
# host use shared memory (vader).
export_mpi_env() {
    export VCLUSTER_HOSTFILE="$1" VCLUSTER_NAME="$NAME"
    export VCLUSTER_MPIRUN="mpirun --hostfile $1"
    export VCLUSTER_ALL_CPUS="$(all_cpus)"
    export VCLUSTER_HOSTS=$HOSTS VCLUSTER_CPUS_PER_HOST=$CPUS_PER_HOST  # for the agent
    export OMPI_MCA_plm_rsh_agent="$SELF agent --name $NAME"
    # each host has its own cores already (host_cpus); Open MPI's binding
    # would put the first rank of every host on core 0 of the whole machine
    export OMPI_MCA_hwloc_base_binding_policy=none
    export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_pml=ob1
    export OMPI_MCA_btl_tcp_if_include=$SUBNET.0/24 OMPI_MCA_oob_tcp_if_include=$SUBNET.0/24
    export OMPI_MCA_rmaps_base_oversubscribe=1
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
}

parse() {
    while (( $# )); do
        case $1 in
            --hosts) HOSTS=$2; shift 2 ;;
            --slots) SLOTS=$2; shift 2 ;;
            --rate) RATE=$2; shift 2 ;;
            --name) NAME=$2; shift 2 ;;
            --cpus-per-host) CPUS_PER_HOST=$2; shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    [[ $NAME =~ ^[a-zA-Z0-9]{1,10}$ ]] || die "--name: 1 to 10 letters or digits"
    [[ $CPUS_PER_HOST =~ ^[0-9]+$ ]] || die "--cpus-per-host: a number of cores"
    REST=("$@")
}

cmd=${1:-}
[[ -n $cmd ]] && shift
case $cmd in
    up) parse "$@"; cluster_up; echo "$NAME: $HOSTS hosts up" ;;
    down) parse "$@"; cluster_down ;;
    exec) parse "$@"; [[ ${#REST[@]} -ge 2 ]] || die "exec: HOST_INDEX CMD"; in_host "${REST[@]}" ;;
    agent)
        # Open MPI calls: agent [plm_rsh_args] HOST CMD...; the command is one
        # shell line to run there, as with ssh.
        parse "$@"; set -- "${REST[@]}"
        host=$1; shift
        [[ $host == "$SUBNET".* ]] || die "agent: $host is not a cluster address"
        in_host $(( ${host##*.} - 1 )) sh -c "$*" ;;
    run)
        parse "$@"
        [[ ${#REST[@]} -ge 1 ]] || die "run: a command after --"
        [[ $(id -u) -eq 0 ]] || die "needs root for network namespaces"
        dir=$(mktemp -d)
        trap 'cluster_down; rm -rf "$dir"' EXIT
        trap 'exit 130' INT TERM
        cluster_up
        write_hostfile "$dir/hostfile"
        export_mpi_env "$dir/hostfile"
        set +e
        (in_host 0 "${REST[@]}")
        rc=$?
        exit $rc ;;
    *) sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'; [[ $cmd == -h || $cmd == --help ]] || exit 2 ;;
esac
