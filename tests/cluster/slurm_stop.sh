#!/bin/bash
# Stop every daemon slurm_up.sh started under STATE_DIR, by the pid in its pid file:
# SIGTERM to all (SLURM's daemons first), then wait for each, SIGKILL after 10 s.
# Jobs still running end with slurmd.
S=${1:?usage: slurm_stop.sh STATE_DIR}
status=0
pids=()
for f in "$S/slurmd.pid" "$S/slurmctld.pid" "$S/slurmdbd.pid" "$S/mysqlrun/mariadbd.pid" "$S/munge/munged.pid"; do
  [ -s "$f" ] || continue
  p=$(cat "$f")
  kill -0 "$p" 2>/dev/null && kill "$p" && pids+=("$p")
done
for p in "${pids[@]}"; do
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    kill -9 "$p" 2>/dev/null; sleep 0.2
    kill -0 "$p" 2>/dev/null && { echo "WARN: pid $p still alive" >&2; status=1; }
  fi
done
exit $status
