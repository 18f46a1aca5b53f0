#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (with job accounting), for the
# workflow's SLURM test (tests/workflow/test_slurm.py) and for trying `--workflow-profile profiles/slurm`.
#
#   bash cluster/slurm/start.sh      # idempotent: running it again leaves running daemons alone
#   bash cluster/slurm/stop.sh       # stops the daemons by their recorded PIDs
#
# Needs root and Debian/Ubuntu (apt-get). Works without systemd: every daemon is started by
# hand. What it does:
#   1. installs munge, slurmctld, slurmd, slurm-client, slurmdbd, mariadb-server if missing;
#   2. writes slurm.conf and slurmdbd.conf under the state folder and links them from
#      /etc/slurm (where sinfo/sbatch/srun look); one node (this machine, as `slurmd -C`
#      sees it) in one partition, `debug`;
#   3. starts munged, MariaDB (private data folder, 127.0.0.1 only), slurmdbd, registers the
#      cluster, an account and root in the accounting database (sacctmgr), then slurmctld and
#      slurmd; each daemon writes its PID file under $STATE/run;
#   4. waits until `sinfo` shows the node idle and `srun hostname` works.
#
# Environment:
#   DEEPLABV3_SLURM_DIR      state folder (config, PIDs, logs, spool, database) [/tmp/deeplabv3-slurm]
#   DEEPLABV3_SLURM_DB_PORT  MariaDB TCP port on 127.0.0.1 [13306]
#   DEEPLABV3_SLURM_TIMEOUT  seconds to wait for each daemon and for the node [60]
set -euo pipefail

STATE=${DEEPLABV3_SLURM_DIR:-/tmp/deeplabv3-slurm}
DB_PORT=${DEEPLABV3_SLURM_DB_PORT:-13306}
TIMEOUT=${DEEPLABV3_SLURM_TIMEOUT:-60}
CLUSTER=deeplabv3 # ClusterName, also the accounting account
PARTITION=debug
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
MARKER="# written by deeplabv3 cluster/slurm/start.sh"

say() { echo "[slurm start] $*"; }
die() {
    echo "[slurm start] error: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons as root/munge/mysql)"

# ---------------------------------------------------------------------------------------------
# 1. Packages (apt-get update only when something is missing).
missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$package")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    say "packages already installed: ${PACKAGES[*]}"
fi

# ---------------------------------------------------------------------------------------------
# Helpers: a daemon is "running" when its PID file names a live process with the expected name.
pid_of() { # pid_of FILE -> prints the PID if FILE names a live process
    local file=$1 pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
running() { # running NAME PIDFILE
    local pid
    pid=$(pid_of "$2") || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]]
}
wait_for() { # wait_for WHAT LOGFILE COMMAND...: retry COMMAND for up to $TIMEOUT s
    local what=$1 log=$2
    shift 2
    for ((i = 0; i < TIMEOUT * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "[slurm start] $what did not come up in ${TIMEOUT}s; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
}

# ---------------------------------------------------------------------------------------------
# 2. Folders and configuration.
say "state folder: $STATE"
mkdir -p "$STATE"/{etc,run,log,spool/slurmctld,spool/slurmd,munge,mysql-run}
chmod 755 "$STATE"
chown munge:munge "$STATE/munge"
chown mysql:mysql "$STATE/mysql-run" # MariaDB writes its pid and socket here: must be mysql's
install -d -o munge -g munge -m 755 /run/munge # munged's socket, where every client looks for it

NODE=$(hostname -s)
# slurmd -C: this machine's CPUs/sockets/cores/memory. Configure 95% of its memory: slurmd
# drains a node that reports less memory than configured.
read -r -a node_line <<<"$(slurmd -C | head -n 1)"
node_spec=()
for field in "${node_line[@]}"; do
    case $field in
        NodeName=*) ;;
        RealMemory=*) node_spec+=("RealMemory=$((${field#RealMemory=} * 95 / 100))") ;;
        *) node_spec+=("$field") ;;
    esac
done
say "node: $NODE ${node_spec[*]}"

DB_PASS_FILE=$STATE/etc/db.pass
[[ -s $DB_PASS_FILE ]] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASS_FILE")
DB_PASS=$(cat "$DB_PASS_FILE")

write_if_changed() { # write_if_changed FILE MODE: stdin -> FILE (untouched when equal)
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv -f "$tmp" "$file" && say "wrote $file"; fi
}

write_if_changed "$STATE/etc/slurm.conf" 644 <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
# No cgroups here (no systemd): track processes by parent PID, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Cores and memory are the consumable resources (several small jobs share the node).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
# A node that was down comes back by itself; finished jobs stay visible to squeue for an hour.
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# Accounting through slurmdbd (sacct works, as on real clusters); keep the job comment,
# where Snakemake's SLURM executor writes the rule name.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=$NODE ${node_spec[*]} State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

write_if_changed "$STATE/etc/slurmdbd.conf" 600 <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

# sinfo/sbatch/srun/sacct and the daemons read /etc/slurm/*.conf: link ours there, but never
# replace a configuration that this script did not write (a real cluster's).
mkdir -p /etc/slurm
for name in slurm.conf slurmdbd.conf; do
    target=/etc/slurm/$name
    if [[ -e $target && ! -L $target ]] && ! grep -qF "$MARKER" "$target"; then
        die "$target exists and was not written by this script; move it away first"
    fi
    if [[ $(readlink "$target" 2>/dev/null) != "$STATE/etc/$name" ]]; then
        ln -sfn "$STATE/etc/$name" "$target"
        say "linked $target -> $STATE/etc/$name"
    fi
done

# ---------------------------------------------------------------------------------------------
# 3. Daemons, in dependency order.

# munged (authentication between all SLURM parts), as user munge.
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 700 /etc/munge
    (umask 077 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none)
    chown munge:munge /etc/munge/munge.key
fi
if running munged "$STATE/run/munged.pid"; then
    say "munged already running (pid $(pid_of "$STATE/run/munged.pid"))"
else
    say "starting munged"
    runuser -u munge -- munged --force --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log"
    wait_for munged "$STATE/munge/munged.log" sh -c 'munge -n | unmunge'
    cp "$STATE/munge/munged.pid" "$STATE/run/munged.pid"
fi

# MariaDB for slurmdbd: its own data folder, socket and port, so a system MariaDB is untouched.
MYSQL_SOCKET=$STATE/mysql-run/mariadbd.sock
mysql_root() { mariadb --no-defaults --protocol=socket --socket="$MYSQL_SOCKET" -u root "$@"; }
if [[ ! -d $STATE/mysql/mysql ]]; then
    say "initialising the MariaDB data folder $STATE/mysql"
    mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql" \
        --auth-root-authentication-method=socket --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 ||
        {
            tail -n 20 "$STATE/log/mariadb-install.log" >&2
            die "mariadb-install-db failed"
        }
fi
if running mariadbd "$STATE/run/mariadbd.pid"; then
    say "mariadbd already running (pid $(pid_of "$STATE/run/mariadbd.pid"))"
else
    say "starting mariadbd on 127.0.0.1:$DB_PORT"
    rm -f "$MYSQL_SOCKET"
    # mariadbd does not fork: run it detached (setsid, no terminal); it writes its own PID file.
    setsid mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql" \
        --socket="$MYSQL_SOCKET" --pid-file="$STATE/mysql-run/mariadbd.pid" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$STATE/mysql-run/mariadbd.err" \
        --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
    wait_for mariadbd "$STATE/mysql-run/mariadbd.err" mysql_root -e 'SELECT 1'
    cp "$STATE/mysql-run/mariadbd.pid" "$STATE/run/mariadbd.pid"
fi
say "granting the slurm database user access to slurm_acct_db"
mysql_root --batch <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF

# slurmdbd (accounting), then the cluster, an account and root in its database.
if running slurmdbd "$STATE/run/slurmdbd.pid"; then
    say "slurmdbd already running (pid $(pid_of "$STATE/run/slurmdbd.pid"))"
else
    say "starting slurmdbd"
    slurmdbd
    wait_for slurmdbd "$STATE/log/slurmdbd.log" sacctmgr -n list cluster
fi
# (slurmdbd creates account and user root by itself; give root the project's account too,
# as its default, so that jobs are charged to it as on a real cluster.)
if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    say "sacctmgr: adding cluster $CLUSTER"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if [[ -z $(sacctmgr -n -P list account "$CLUSTER" format=account) ]]; then
    say "sacctmgr: adding account $CLUSTER"
    sacctmgr -i add account "$CLUSTER" Cluster="$CLUSTER" Description=deeplabv3 Organization=deeplabv3 >/dev/null
fi
if [[ -z $(sacctmgr -n -P list assoc where user=root account="$CLUSTER" format=user) ]]; then
    say "sacctmgr: adding user root to account $CLUSTER (its default account)"
    sacctmgr -i add user root Account="$CLUSTER" DefaultAccount="$CLUSTER" >/dev/null
fi
if [[ $(sacctmgr -n -P list user root format=defaultaccount) != "$CLUSTER" ]]; then
    say "sacctmgr: making $CLUSTER the default account of root"
    sacctmgr -i modify user root set DefaultAccount="$CLUSTER" >/dev/null
fi

# slurmctld (the controller) and slurmd (this node's daemon); both fork and write PID files.
if running slurmctld "$STATE/run/slurmctld.pid"; then
    say "slurmctld already running (pid $(pid_of "$STATE/run/slurmctld.pid"))"
else
    say "starting slurmctld"
    slurmctld
    wait_for slurmctld "$STATE/log/slurmctld.log" scontrol ping
fi
if running slurmd "$STATE/run/slurmd.pid"; then
    say "slurmd already running (pid $(pid_of "$STATE/run/slurmd.pid"))"
else
    say "starting slurmd"
    slurmd
fi

# ---------------------------------------------------------------------------------------------
# 4. Ready when the node is idle (or busy with jobs) and a job step runs.
node_ready() { [[ $(sinfo -h -n "$NODE" -o %t) =~ ^(idle|mix|alloc)$ ]]; }
if ! node_ready && [[ $(sinfo -h -n "$NODE" -o %t) =~ ^(down|drain|drng) ]]; then
    say "node $NODE is $(sinfo -h -n "$NODE" -o %t): resuming it"
    scontrol update NodeName="$NODE" State=RESUME || true
fi
wait_for "node $NODE" "$STATE/log/slurmd.log" node_ready
say "sinfo:"
sinfo
say "srun hostname: $(timeout "$TIMEOUT" srun -N1 -n1 -t 1 hostname)"
for daemon in munged mariadbd slurmdbd slurmctld slurmd; do
    say "$daemon pid $(pid_of "$STATE/run/$daemon.pid") ($STATE/run/$daemon.pid)"
done
say "cluster $CLUSTER is up; stop it with: bash cluster/slurm/stop.sh"
