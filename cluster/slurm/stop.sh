#!/usr/bin/env bash
# Stop the single-node SLURM cluster that cluster/slurm/start.sh started, by the PIDs it
# recorded under $STATE/run, in reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged.
#
#   bash cluster/slurm/stop.sh           # stop; keep the state folder (job history, database)
#   bash cluster/slurm/stop.sh --purge   # stop, then delete the state folder and /etc/slurm links
#
# A PID file whose process is gone, or now belongs to another program, is only removed.
# Environment: DEEPLABV3_SLURM_DIR, the state folder [/tmp/deeplabv3-slurm] (as for start.sh).
set -euo pipefail

STATE=${DEEPLABV3_SLURM_DIR:-/tmp/deeplabv3-slurm}
PURGE=false
case ${1:-} in
    "") ;;
    --purge) PURGE=true ;;
    *)
        echo "usage: $0 [--purge]" >&2
        exit 2
        ;;
esac

say() { echo "[slurm stop] $*"; }

stop_daemon() { # stop_daemon NAME: SIGTERM the PID in $STATE/run/NAME.pid, SIGKILL after 30 s
    local name=$1 file=$STATE/run/$1.pid pid
    if [[ ! -s $file ]]; then
        say "$name: no PID file, nothing to stop"
        return 0
    fi
    pid=$(tr -dc '0-9' <"$file")
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
        say "$name: pid ${pid:-?} is not running"
    elif [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$name" ]]; then
        say "$name: pid $pid is now $(cat "/proc/$pid/comm" 2>/dev/null), not $name: leaving it alone"
    else
        say "$name: stopping pid $pid"
        kill -TERM "$pid"
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name: still running after 30 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    stop_daemon "$daemon"
done

if $PURGE; then
    for name in slurm.conf slurmdbd.conf; do
        if [[ -L /etc/slurm/$name && $(readlink "/etc/slurm/$name") == "$STATE/etc/$name" ]]; then
            say "removing the link /etc/slurm/$name"
            rm -f "/etc/slurm/$name"
        fi
    done
    say "deleting the state folder $STATE"
    rm -rf "$STATE"
fi
say "done"
