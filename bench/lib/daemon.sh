# What a JCS daemon spends (sourced by bench/event-cost.sh and bench/nginx.sh). PID: the
# daemon's ($JCS_HOME/daemon.pid).

# daemon_threads_ns PID: the CPU time (ns) of its threads, summed by thread name, one
# "NAME NS" line each, sorted by name (/proc/PID/task/*/schedstat).
daemon_threads_ns() {
  for t in /proc/"$1"/task/*; do
    echo "$(cat "$t/comm") $(awk '{print $1}' "$t/schedstat")"
  done | awk '{s[$1] += $2} END {for (k in s) print k, s[k]}' | sort
}

# daemon_cpu_ns PID: the CPU time (ns) of all its threads.
daemon_cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {print s + 0}'; }

# bpf_run_ns PID: the run time (ns) of the BPF programs it holds, summed (counted only while
# kernel.bpf_stats_enabled is 1).
bpf_run_ns() {
  cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '/^run_time_ns/ {s += $2} END {print s + 0}'
}
