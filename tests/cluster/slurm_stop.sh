#!/bin/bash
# Stop every daemon slurm_up.sh started under STATE_DIR, by the pid in its pid file,
# in reverse order; jobs still running are killed by slurmd's exit.
S=${1:?usage: slurm_stop.sh STATE_DIR}
status=0
stop() {  # $1 = pid file
  [ -s "$1" ] || return 0
  local p; p=$(cat "$1")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      kill -9 "$p" 2>/dev/null; sleep 0.2
      kill -0 "$p" 2>/dev/null && { echo "WARN: $1 pid $p still alive" >&2; status=1; }
    fi
  fi
  return 0
}
stop "$S/slurmd.pid"; stop "$S/slurmctld.pid"; stop "$S/slurmdbd.pid"
stop "$S/mysqlrun/mariadbd.pid"; stop "$S/munge/munged.pid"
exit $status
