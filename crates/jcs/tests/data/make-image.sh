#!/bin/sh
# Builds a two-layer container image for tests/root_ve.rs in DIR: DIR/oci.tar (an OCI image
# layout) and DIR/docker.tar (a docker archive) with the same layers. Layer 1: busybox, files,
# and two symbolic links that point out of the root (ESCAPE: absolute; `up`: relative, with
# ..). Layer 2 (gzip): a new file, a whiteout, an opaque directory, and files written through
# both links (members without their directory, so an extractor that follows links writes
# outside).   make-image.sh DIR ESCAPE
set -eu
W=$1
ESC=$2
mkdir -p "$W/l1/bin" "$W/l1/etc" "$W/l1/opq" "$W/l2/etc" "$W/l2/opq" "$W/l2/escape" "$W/l2/up"
cp /bin/busybox "$W/l1/bin/busybox"
for a in sh cat ls; do ln -s busybox "$W/l1/bin/$a"; done
echo one > "$W/l1/etc/x"
echo gone > "$W/l1/etc/gone"
echo a > "$W/l1/opq/a"
ln -s "$ESC" "$W/l1/escape"
ln -s "../../../../../../..$ESC-up" "$W/l1/up"
echo two > "$W/l2/etc/y"
: > "$W/l2/etc/.wh.gone"
: > "$W/l2/opq/.wh..wh..opq"
echo b > "$W/l2/opq/b"
echo pwned > "$W/l2/escape/pwned"
echo pwned > "$W/l2/up/pwned"
tar -cf "$W/l1.tar" -C "$W/l1" .
tar -cf "$W/l2.tar" -C "$W/l2" etc/y etc/.wh.gone opq/.wh..wh..opq opq/b escape/pwned up/pwned
gzip -n "$W/l2.tar"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}' > "$W/config.json"
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
mkdir -p "$W/oci/blobs/sha256" "$W/docker"
for f in l1.tar l2.tar.gz config.json; do cp "$W/$f" "$W/oci/blobs/sha256/$(sha "$W/$f")"; cp "$W/$f" "$W/docker/$f"; done
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$(sha "$W/config.json")" "$(size "$W/config.json")" "$(sha "$W/l1.tar")" "$(size "$W/l1.tar")" "$(sha "$W/l2.tar.gz")" "$(size "$W/l2.tar.gz")" > "$W/manifest"
cp "$W/manifest" "$W/oci/blobs/sha256/$(sha "$W/manifest")"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}}]}' \
  "$(sha "$W/manifest")" "$(size "$W/manifest")" > "$W/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$W/oci/oci-layout"
tar -cf "$W/oci.tar" -C "$W/oci" .
echo '[{"Config":"config.json","RepoTags":["test:1"],"Layers":["l1.tar","l2.tar.gz"]}]' > "$W/docker/manifest.json"
tar -cf "$W/docker.tar" -C "$W/docker" .
