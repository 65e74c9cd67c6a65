#!/usr/bin/env bash
# Start, use and stop a Ray cluster for neuroevo on a list of hosts, over ssh, with Ray's own `ray start`.
#
#   scripts/ray_cluster.sh start HEAD [WORKER ...]   # head on HEAD, every WORKER joins it
#   scripts/ray_cluster.sh train HEAD -- ARGS...      # neuroevo train ARGS --ray-address auto, run on HEAD
#   scripts/ray_cluster.sh status HEAD
#   scripts/ray_cluster.sh stop HEAD [WORKER ...]
#
# Example (3 machines of 16 cores: 47 workers, one core left to the driver):
#   scripts/ray_cluster.sh start gpu1 cpu1 cpu2
#   scripts/ray_cluster.sh train gpu1 -- --env Humanoid-v5 --algo ars --workers 47 --out runs/humanoid
#
# Every host needs this checkout at the same path with its .venv set up (bash scripts/setup.sh), and
# passwordless ssh from here. Settings (environment variables):
#   NEUROEVO_DIR   the checkout on the hosts (default: this checkout's path)
#   RAY_PORT       the head's GCS port (default 6379)
#   HEAD_IP        the head's address on the cluster network (default: the first address `hostname -I`
#                  gives on HEAD); Ray binds its servers to it: use a private network only
#   SSH            the ssh command (default: ssh -o BatchMode=yes)
#
# Security: token authentication is switched on (RAY_AUTH_MODE=token). The head generates a token in
# ~/.ray/auth_token; this script copies it to each worker through ssh's stdin (never on a command line)
# with mode 600. Anyone holding the token, or reaching an unauthenticated cluster's ports, can run any
# code on every host: keep the ports (RAY_PORT, the dashboard's 8265, the worker ports) behind a
# firewall that admits the cluster's own hosts only. No dashboard is started.
set -euo pipefail

usage() { sed -n '2,7p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage

command=$1
head=$2
shift 2
dir=${NEUROEVO_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
port=${RAY_PORT:-6379}
ssh_cmd=${SSH:-ssh -o BatchMode=yes}
ray="cd '$dir' && RAY_AUTH_MODE=token .venv/bin/ray"

on() {  # on HOST COMMAND: run COMMAND in a login shell on HOST
    local host=$1
    shift
    $ssh_cmd "$host" "bash -lc $(printf '%q' "$*")"
}

head_ip() {
    if [ -n "${HEAD_IP:-}" ]; then echo "$HEAD_IP"; else on "$head" "hostname -I | awk '{print \$1}'"; fi
}

case $command in
start)
    ip=$(head_ip)
    echo "head $head ($ip:$port)"
    on "$head" "$ray get-auth-token --generate >/dev/null && $ray start --head --node-ip-address=$ip --port=$port \
        --include-dashboard=false --disable-usage-stats"
    token=$(on "$head" "cat ~/.ray/auth_token")
    for worker in "$@"; do
        echo "worker $worker"
        printf '%s' "$token" | on "$worker" "umask 077 && mkdir -p ~/.ray && cat > ~/.ray/auth_token"
        on "$worker" "$ray start --address=$ip:$port --disable-usage-stats"
    done
    on "$head" "$ray status"
    ;;
train)
    [ "${1:-}" = "--" ] && shift
    args=$(printf '%q ' "$@")
    on "$head" "cd '$dir' && RAY_AUTH_MODE=token .venv/bin/neuroevo train --ray-address auto $args"
    ;;
status)
    on "$head" "$ray status"
    ;;
stop)
    for host in "$@" "$head"; do
        echo "stopping Ray on $host"
        on "$host" "$ray stop" || true
    done
    ;;
*)
    usage
    ;;
esac
