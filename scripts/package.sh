#!/usr/bin/env bash
# Builds jcs_VERSION_ARCH.deb: /usr/bin/jcs, the systemd units (the daemon, and its socket for
# activation), /etc/jcs/config.toml (a conffile, every setting commented out), shell completions
# (bash, zsh, fish), the manual pages, the docs and the JSON schemas.
#   scripts/package.sh [--binary PATH] [--out DIR]
# Without --binary it builds the release binary first. Needs dpkg-deb (Debian's dpkg).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=""
out="target/debian"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v dpkg-deb >/dev/null || { echo "package.sh: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 1; }
if [ -z "$bin" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release --locked --quiet -p jcs
  bin=target/release/jcs
fi
[ -x "$bin" ] || { echo "package.sh: no jcs binary at $bin" >&2; exit 1; }
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d /tmp/jcs-package.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root="$stage/jcs_${version}_${arch}"
install -D -m 0755 "$bin" "$root/usr/bin/jcs"
strip --strip-debug "$root/usr/bin/jcs" 2>/dev/null || true
for u in jcs-daemon.service jcs-daemon.socket; do
  sed 's|/usr/local/bin/jcs|/usr/bin/jcs|g' "contrib/$u" | install -D -m 0644 /dev/stdin "$root/lib/systemd/system/$u"
done
"$root/usr/bin/jcs" completions bash | install -D -m 0644 /dev/stdin "$root/usr/share/bash-completion/completions/jcs"
"$root/usr/bin/jcs" completions zsh | install -D -m 0644 /dev/stdin "$root/usr/share/zsh/vendor-completions/_jcs"
"$root/usr/bin/jcs" completions fish | install -D -m 0644 /dev/stdin "$root/usr/share/fish/vendor_completions.d/jcs.fish"
mkdir -p "$root/usr/share/man/man1"
"$root/usr/bin/jcs" man "$root/usr/share/man/man1" >/dev/null
gzip -9n "$root"/usr/share/man/man1/*.1
for d in README.md ARCHITECTURE.md docs/*.md; do
  install -D -m 0644 "$d" "$root/usr/share/doc/jcs/$(basename "$d")"
done
for d in docs/schema/*.json; do
  install -D -m 0644 "$d" "$root/usr/share/doc/jcs/schema/$(basename "$d")"
done
install -D -m 0644 contrib/config.toml "$root/etc/jcs/config.toml"
size=$(du -sk "$root" | cut -f1)
mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: jcs
Version: $version
Architecture: $arch
Maintainer: JCS maintainers <maintainers@users.noreply.example>
Installed-Size: $size
Depends: libc6, libelf1, zlib1g, adduser
Recommends: iproute2, nftables, busybox-static, debootstrap
Section: admin
Priority: optional
Description: Journaling Computing System
 Runs every application instance in its own fresh container (a VE) and records
 what crosses its boundary (files, network, other VEs) into a tamper-evident
 journal, with eBPF; tracks contamination, aborts illegal transactions by
 policy and recovers files.
CONTROL
echo /etc/jcs/config.toml > "$root/DEBIAN/conffiles"
# The analysts' group: its members read the journal and the catalog without root.
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && ! grep -q '^jcs-analyst:' /etc/group; then
  addgroup --system --quiet jcs-analyst
fi
exit 0
POSTINST
chmod 0755 "$root/DEBIAN/postinst"
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$root" "$out/jcs_${version}_${arch}.deb" >/dev/null
echo "$out/jcs_${version}_${arch}.deb"
