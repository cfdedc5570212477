#!/bin/bash
# A single-node SLURM on 127.0.0.1 for the tests, no systemd, nothing under /etc written.
#
#   slurm_up.sh STATE_DIR [--no-accounting]
#
# Installs munge, slurmctld, slurmd, slurm-client (and slurmdbd + MariaDB for sacct,
# which Soma-Workflow needs) with apt-get when missing, then starts each daemon by hand
# with its own config, sockets, state, logs and pid files under STATE_DIR, on free
# ports. Clients reach it through `source STATE_DIR/env` (SLURM_CONF=...).
# Stop everything with slurm_stop.sh STATE_DIR. Needs root. Debian 12: slurm-wlm 22.05.
set -euo pipefail
S=${1:?usage: slurm_up.sh STATE_DIR [--no-accounting]}
ACCOUNTING=1; [ "${2:-}" = "--no-accounting" ] && ACCOUNTING=0
[ "$(id -u)" = 0 ] || { echo "slurm_up.sh: needs root" >&2; exit 2; }
H=$(hostname -s)       # NodeName must equal `hostname -s`
mkdir -p "$S"; S=$(cd "$S" && pwd)
chmod 755 "$S"         # munge and mysql users must traverse it

pkgs="munge slurmctld slurmd slurm-client"
[ $ACCOUNTING = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
missing=""
for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

mkdir -p "$S"/{etc,state,spool,log,munge,mysql,mysqlrun}
chown munge:munge "$S/munge"; chmod 755 "$S/munge"

# Four free ports on 127.0.0.1 (held together so that they differ), for slurmctld, slurmd, slurmdbd, MariaDB.
read -r CTLD_PORT SLURMD_PORT DBD_PORT DB_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

# --- munge on its default socket (slurmctld's link to slurmdbd ignores AuthInfo=socket=) ---
# Debian's postinst creates /etc/munge/munge.key. A munged already answering is used as is
# (and left running); otherwise ours starts, its pid file under STATE_DIR.
if [ ! -s /etc/munge/munge.key ]; then
  mungekey -c -f && chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge; chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file="$S/munge/munged.pid" \
    --log-file="$S/munge/munged.log" --seed-file="$S/munge/munged.seed"
  munge -n | unmunge >/dev/null
fi

# --- slurm.conf ---
# The cores this process may use. nproc obeys OMP_NUM_THREADS, which a Dask LocalCluster sets to 1
# in its parent's environment for good (distributed's nanny.pre-spawn-environ): after one, in the
# same test session, the node would have 1 CPU and run one array element at a time.
NCPUS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
if [ $ACCOUNTING = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/linux"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi
cat > "$S/etc/slurm.conf" <<CONF
ClusterName=mempamaltest
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MaxArraySize=1001
$ACCT
NodeName=$H NodeAddr=127.0.0.1 CPUs=$NCPUS RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$S/env" <<ENV
export SLURM_CONF=$S/etc/slurm.conf
ENV
export SLURM_CONF=$S/etc/slurm.conf

# --- MariaDB + slurmdbd (only for sacct) ---
if [ $ACCOUNTING = 1 ]; then
  chown mysql:mysql "$S/mysql" "$S/mysqlrun"
  mariadb-install-db --no-defaults --user=mysql --datadir="$S/mysql" --skip-test-db \
    --auth-root-authentication-method=socket > "$S/log/mariadb-install.log" 2>&1
  setsid -f mariadbd --no-defaults --user=mysql --datadir="$S/mysql" \
    --socket="$S/mysqlrun/mysql.sock" --pid-file="$S/mysqlrun/mariadbd.pid" \
    --log-error="$S/mysqlrun/mariadbd.err" --bind-address=127.0.0.1 --port=$DB_PORT \
    --skip-name-resolve --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 \
    </dev/null >/dev/null 2>&1
  for i in $(seq 150); do [ -S "$S/mysqlrun/mysql.sock" ] && break; sleep 0.2; done
  mariadb --no-defaults --socket="$S/mysqlrun/mysql.sock" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  # slurmdbd reads slurmdbd.conf next to $SLURM_CONF.
  cat > "$S/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$S/slurmdbd.pid
LogFile=$S/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$S/etc/slurmdbd.conf"
  slurmdbd
  for i in $(seq 100); do timeout 5 sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.1; done
fi

# --- slurmctld + slurmd (both daemonize and write their pid files) ---
slurmctld
slurmd -N "$H"
for i in $(seq 100); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.1; done
sinfo -h -o %T | grep -q idle || { echo "slurm_up.sh: node not idle; see $S/log" >&2; sinfo >&2 || true; exit 1; }
echo "slurm up: SLURM_CONF=$SLURM_CONF"
