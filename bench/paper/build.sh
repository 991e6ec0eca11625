#!/usr/bin/env bash
# Builds the base store for bench/paper/run.sh: a debootstrap template and, in maintenance
# mode, the apps of the paper's workloads: apache (apache2 and a generated static site of 25
# pages), sshd (openssh-server, and apache2's configuration to page through), chromium
# (Debian's chromium, started headless), sqlite (python3 and a deterministic script) and
# libreoffice (LibreOffice without GUI, Python-UNO, and two documents made by office.py).
# Idempotent: an app that exists is kept.   bench/paper/build.sh BASE_STORE_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$(dirname "$here")")
jcs="$repo/target/release/jcs"
export JCS_HOME="$1"
mkdir -p "$JCS_HOME"
# (grep reads everything: with -q it would stop early, and pipefail would see jcs's SIGPIPE.)
has() { "$jcs" "$1" list --json 2>/dev/null | grep -c "\"name\": *\"$2\"" >/dev/null; }
has template deb || "$jcs" template create deb --debootstrap bookworm
if ! has app apache; then
  "$jcs" app create apache --template deb --net bridge
  "$jcs" app update apache -- /bin/sh -c '
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends apache2 >/dev/null
    i=1; links=""; while [ $i -le 24 ]; do links="$links<li><a href=\"p$i.html\">page $i</a></li>"; i=$((i+1)); done
    printf "<html><body><h1>home</h1><ul>%s</ul></body></html>\n" "$links" > /var/www/html/index.html
    i=1; while [ $i -le 24 ]; do head -c 6000 /usr/share/common-licenses/GPL-3 | sed "s/^/page $i: /" > /var/www/html/p$i.html; i=$((i+1)); done
    rm -rf /var/lib/apt/lists/*'
fi
if ! has app sshd; then
  # sshd, and apache2 for the configuration the client pages through; host keys made here.
  "$jcs" app create sshd --template deb --net bridge --persist /root/.ssh
  "$jcs" app update sshd -- /bin/sh -c '
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server apache2 >/dev/null
    ssh-keygen -A >/dev/null
    rm -rf /var/lib/apt/lists/*'
fi
if ! has app chromium; then
  # On the bridge: the browsing workload loads the site of an apache VE.
  "$jcs" app create chromium --template deb --net bridge --persist /root
  "$jcs" app update chromium -- /bin/sh -c '
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    rm -rf /var/lib/apt/lists/*'
fi
if ! has app sqlite; then
  "$jcs" app create sqlite --template deb --persist /data
  "$jcs" app update sqlite -- /bin/sh -c '
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null
    rm -rf /var/lib/apt/lists/*'
  mkdir -p "$JCS_HOME/persist/sqlite/data"
  cat > "$JCS_HOME/persist/sqlite/data/bench.py" <<'PY'
# A deterministic sqlite workload: the same statements, the same results, every run.
import hashlib, os, sqlite3
path = "/data/bench.db"
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v INTEGER)")
db.executemany("INSERT INTO t(k, v) VALUES (?, ?)", ((f"key{i % 97}", i * 7 % 1009) for i in range(20000)))
db.commit()
rows = db.execute("SELECT k, SUM(v), COUNT(*) FROM t GROUP BY k ORDER BY k").fetchall()
db.execute("UPDATE t SET v = v + 1 WHERE id % 3 = 0")
db.commit()
digest = hashlib.sha256(repr(rows).encode()).hexdigest()
open("/data/result.txt", "w").write(digest + "\n")
print(digest)
PY
fi
if ! has app libreoffice; then
  # LibreOffice without GUI and Python-UNO; the documents live in persistent storage (/data),
  # made once here by LibreOffice itself from generated HTML (deterministic text).
  # UNO looks up the VE's hostname and its peer's name: libnss-myhostname answers the first
  # (the template has no /etc/hosts), a resolver on loopback refuses the second at once (the
  # benchmark's network is closed: the host's resolver would time out, 10 s per connection).
  "$jcs" app create libreoffice --template deb --net bridge --persist /data
  "$jcs" app update libreoffice -- /bin/sh -c '
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libreoffice-writer-nogui python3-uno libnss-myhostname >/dev/null
    echo "nameserver 127.0.0.1" > /etc/resolv.conf
    rm -rf /var/lib/apt/lists/*'
  mkdir -p "$JCS_HOME/persist/libreoffice/data"
  cp "$here/office.py" "$JCS_HOME/persist/libreoffice/data/office.py"
  "$jcs" run libreoffice -- python3 /data/office.py make-documents /data
fi
# Maintenance mode started a monitor daemon for this store: stop it (run.sh works on copies).
[ -f "$JCS_HOME/daemon.pid" ] && kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
