#!/bin/bash
# Stop what remote_up.sh STATE_DIR started, by pid: sshd (its pid file), the database
# server (the pid it recorded), then any process left to the cluster account (engines,
# jobs) by the pids ps lists for that account only. SIGTERM, then SIGKILL after 10 s.
# The account and its venv stay (they are the slow part to make); its server state goes.
S=${1:?usage: remote_stop.sh STATE_DIR}
U=mempamal-cluster
status=0
pids=()
[ -s "$S/sshd/sshd.pid" ] && pids+=("$(cat "$S/sshd/sshd.pid")")
uri=$S/server/logs/database_server_uri.py.txt
[ -s "$uri" ] && pids+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$uri")")
if id "$U" >/dev/null 2>&1; then
  pids+=($(ps -u "$U" -o pid= 2>/dev/null))
fi
alive=()
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null && alive+=("$p")
done
for p in "${alive[@]}"; do
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    kill -9 "$p" 2>/dev/null; sleep 0.2
    kill -0 "$p" 2>/dev/null && { echo "WARN: pid $p still alive" >&2; status=1; }
  fi
done
HOME_U=$(getent passwd "$U" | cut -d: -f6)
[ -n "$HOME_U" ] && rm -f "$HOME_U/.soma-workflow.cfg" "$HOME_U/.soma-workflow-scheduler.cfg" "$HOME_U/.ssh/authorized_keys"
exit $status
