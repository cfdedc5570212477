#!/bin/bash
# A "remote cluster" on this machine for the tests: an sshd on a loopback address, a cluster
# account with its own home and Python environment, and Soma-Workflow's server side on it.
#
#   remote_up.sh STATE_DIR CHECKOUT REQUIREMENT...
#
# - installs openssh-server with apt-get when missing;
# - creates the account mempamal-cluster (kept between sessions, like its venv) with the
#   venv ~/venv: python3 -m venv, then REQUIREMENT... (the client's own versions of numpy,
#   scipy, scikit-learn, pyzmq, soma-workflow...) and mempamal from a copy of CHECKOUT;
# - starts sshd on 127.0.0.N port 22 (Soma-Workflow 6 always connects to port 22: the
#   address, not the port, is what differs from a system sshd), its config, host key,
#   log and pid file under STATE_DIR, public key authentication only, for that account only
#   (its ~/.ssh/authorized_keys: this session's key);
# - writes the client side under STATE_DIR/client: an RSA key (Soma-Workflow's ssh tunnel
#   reads ~/.ssh/id_rsa) and .soma-workflow.cfg with the resource "loopback-cluster";
# - writes the server side: ~mempamal-cluster/.soma-workflow.cfg, its database, transfers
#   and logs under STATE_DIR/server, and starts the database server the way Soma-Workflow's
#   documentation says (python -m soma_workflow.start_database_server RESOURCE), as that account.
# Facts for the test go to STATE_DIR/env (KEY=VALUE lines). Stop everything with remote_stop.sh STATE_DIR. Needs root.
set -euo pipefail
S=${1:?usage: remote_up.sh STATE_DIR CHECKOUT REQUIREMENT...}
CHECKOUT=${2:?usage: remote_up.sh STATE_DIR CHECKOUT REQUIREMENT...}
shift 2
[ "$(id -u)" = 0 ] || { echo "remote_up.sh: needs root" >&2; exit 2; }
U=mempamal-cluster
RESOURCE=loopback-cluster
mkdir -p "$S"; S=$(cd "$S" && pwd)
chmod 755 "$S"   # the cluster account reaches its server directory in it

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null; then
  echo "installing openssh-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
fi

# --- the cluster account ---
if ! id "$U" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$U"
fi
usermod -p '*' "$U"   # no password, yet not "locked" ('!'), which sshd without PAM refuses
HOME_U=$(getent passwd "$U" | cut -d: -f6)
VENV=$HOME_U/venv
stamp="python3 $(/usr/bin/python3 -c 'import sys; print(*sys.version_info[:3], sep=".")') $*"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.mempamal-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "creating $VENV: $stamp"
  rm -rf "$VENV"
  runuser -u "$U" -- /usr/bin/python3 -m venv "$VENV"   # the system's Python, not the client's
  runuser -u "$U" -- env HOME="$HOME_U" "$VENV/bin/python" -m pip install -q "$@"
  echo "$stamp" > "$VENV/.mempamal-stamp"
fi
# Containment of the test: Soma-Workflow's servers (database server, engine) bind their zro
# object servers to tcp://* (every interface); in this account's venv, the processes started
# as `python -m soma_workflow.start_...` bind them to 127.0.0.1 instead (a .pth hook).
SITE=$(runuser -u "$U" -- "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$SITE/mempamal_test_loopback.py" <<'PY'
"""Test containment (mempamal's loopback cluster): Soma-Workflow's zro servers on 127.0.0.1 only."""
import zmq

_bind = zmq.Socket.bind


def bind(self, address):
    return _bind(self, address.replace("tcp://*:", "tcp://127.0.0.1:", 1))


zmq.Socket.bind = bind
PY
echo 'import sys; exec("import mempamal_test_loopback") if any(a.startswith("soma_workflow.start_") for a in sys.orig_argv) else None' \
  > "$SITE/mempamal_test_loopback.pth"
chown "$U:$U" "$SITE/mempamal_test_loopback.py" "$SITE/mempamal_test_loopback.pth"
# mempamal itself, always from this checkout (a copy the account can build in).
mkdir -p "$S/src"
cp -r "$CHECKOUT/mempamal" "$CHECKOUT/setup.py" "$CHECKOUT/README.rst" "$S/src/"
find "$S/src" -name __pycache__ -prune -exec rm -rf {} +
chown -R "$U:$U" "$S/src"
runuser -u "$U" -- env HOME="$HOME_U" "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation \
  --force-reinstall "$S/src"
runuser -u "$U" -- rm -rf "$S/src/build" "$S/src/mempamal.egg-info"

# --- sshd on a free loopback address, port 22 ---
ADDR=""
for i in $(seq 50); do
  a="127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))"
  if python3 -c "import socket,sys; s=socket.socket(); s.bind(('$a', 22))" 2>/dev/null; then ADDR=$a; break; fi
done
[ -n "$ADDR" ] || { echo "no loopback address with port 22 free (an sshd on 0.0.0.0:22?)" >&2; exit 3; }
mkdir -p "$S/sshd" /run/sshd
chmod 700 "$S/sshd"
ssh-keygen -q -t ed25519 -N "" -f "$S/sshd/host_ed25519_key"
cat > "$S/sshd/sshd_config" <<CONF
ListenAddress $ADDR:22
HostKey $S/sshd/host_ed25519_key
PidFile $S/sshd/sshd.pid
AllowUsers $U
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding local
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel VERBOSE
CONF

# --- the client side: its home (HOME of the test process while connected) ---
C=$S/client
mkdir -p "$C/.ssh"; chmod 700 "$C" "$C/.ssh"
ssh-keygen -q -t rsa -b 3072 -m PEM -N "" -f "$C/.ssh/id_rsa"
# The account's ~/.ssh/authorized_keys: this session's key only (sshd reads it as the account).
install -d -m 700 -o "$U" -g "$U" "$HOME_U/.ssh"
install -m 600 -o "$U" -g "$U" "$C/.ssh/id_rsa.pub" "$HOME_U/.ssh/authorized_keys"
echo "$ADDR $(cat "$S/sshd/host_ed25519_key.pub" | cut -d' ' -f1,2)" > "$C/.ssh/known_hosts"
cat > "$C/.soma-workflow.cfg" <<CONF
[$RESOURCE]
CLUSTER_ADDRESS     = $ADDR
SUBMITTING_MACHINES = $ADDR
LOGIN               = $U
SCHEDULER_TYPE      = local_basic
PYTHON_COMMAND      = $VENV/bin/python
ALLOWED_PYTHON_VERSIONS = 3
CONF

# --- the server side ---
SV=$S/server
mkdir -p "$SV/logs"
chown -R "$U:$U" "$SV"
# A shared directory, for the shared filesystem cases: the client sees it as STATE_DIR/shared,
# the server also as STATE_DIR/cluster-view (a symlink), declared in its path translation file
# as namespace "mempamal", uuid "workdirs".
mkdir -p "$S/shared"; chown "$U:$U" "$S/shared"
ln -s "$S/shared" "$S/cluster-view"
echo "workdirs $S/cluster-view" > "$SV/translation"; chown "$U:$U" "$SV/translation"
cat > "$HOME_U/.soma-workflow.cfg" <<CONF
[$RESOURCE]
CLUSTER_ADDRESS      = $ADDR
SUBMITTING_MACHINES  = $ADDR
SCHEDULER_TYPE       = local_basic
SERVER_NAME          = mempamal_loopback_$U
SOMA_WORKFLOW_DIR    = $SV
DATABASE_FILE        = $SV/soma_workflow.db
TRANSFERED_FILES_DIR = $SV/transfered_files
SERVER_LOG_FILE      = $SV/logs/log_server
SERVER_LOG_FORMAT    = %(asctime)s => line %(lineno)s: %(message)s
SERVER_LOG_LEVEL     = ERROR
ENGINE_LOG_DIR       = $SV/logs/
ENGINE_LOG_FORMAT    = %(asctime)s => line %(lineno)s: %(message)s
ENGINE_LOG_LEVEL     = ERROR
PATH_TRANSLATION_FILES = mempamal{$SV/translation}
CONF
# The local scheduler on the cluster side: 2 jobs at once.
cat > "$HOME_U/.soma-workflow-scheduler.cfg" <<CONF
[$RESOURCE]
CPU_NB = 2
MAX_CPU_NB = 2
SCHEDULER_INTERVAL = 0.1
CONF
chown "$U:$U" "$HOME_U/.soma-workflow.cfg" "$HOME_U/.soma-workflow-scheduler.cfg"

/usr/sbin/sshd -f "$S/sshd/sshd_config" -E "$S/sshd/sshd.log"
for i in $(seq 50); do [ -s "$S/sshd/sshd.pid" ] && break; sleep 0.1; done
[ -s "$S/sshd/sshd.pid" ] || { echo "sshd did not start:"; cat "$S/sshd/sshd.log"; exit 4; }

# The database server, as the account, over ssh (a login shell as a user would have it);
# setsid -f: it outlives the ssh session. Its pid is in database_server_uri.py.txt.
timeout 60 ssh -i "$C/.ssh/id_rsa" -o UserKnownHostsFile="$C/.ssh/known_hosts" -o BatchMode=yes \
  -o ConnectTimeout=10 -F /dev/null "$U@$ADDR" \
  "cd && setsid -f $VENV/bin/python -m soma_workflow.start_database_server $RESOURCE \
   > $SV/logs/database_server.out 2>&1 < /dev/null"
for i in $(seq 100); do [ -s "$SV/logs/database_server_uri.py.txt" ] && break; sleep 0.1; done
[ -s "$SV/logs/database_server_uri.py.txt" ] || { echo "the database server did not start:"; \
  cat "$SV/logs/database_server.out" "$SV/logs/log_server" 2>/dev/null; exit 5; }

cat > "$S/env" <<ENV
ADDRESS=$ADDR
LOGIN=$U
RESOURCE=$RESOURCE
REMOTE_PYTHON=$VENV/bin/python
REMOTE_HOME=$HOME_U
CLIENT_HOME=$C
SERVER_DIR=$SV
SHARED=$S/shared
CLUSTER_VIEW=$S/cluster-view
ENV
echo "up: $U@$ADDR:22, resource $RESOURCE"
