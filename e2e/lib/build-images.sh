#!/usr/bin/env bash
# Builds the container images the real node runs, as image archives under $IOP_CACHE/node/images
# that the node's containerd imports at start (no registry is involved; pods use
# imagePullPolicy IfNotPresent or Never):
#   iop/pause:<kube version>          Kubernetes' pause.c (testenv.sh build-node), the sandbox
#   iop/mysql-debian:<version>        the MySQL 9.7 root filesystem of e2e/lib/install-mysql97.sh:
#                                     mysqld, mysqladmin, mysql, mysqlrouter and a POSIX sh
#   innodb-operator:local             the operator's binary (cargo build, profile
#                                     $IOP_OPERATOR_PROFILE, default dev) and the libraries it
#                                     links, nothing else; runs as 65532
# An archive is rebuilt only when what it holds changed; each is written under a temporary name
# and renamed into place, so an interrupted build never leaves one that looks complete.
#   e2e/lib/build-images.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/../.."

out="$IOP_CACHE/node/images"
mkdir -p "$out"
bin="$(e2e/testenv/testenv.sh bin)"
source e2e/testenv/versions.sh

# archive NAME:TAG FILE CONFIG_JSON ROOT: a single-layer image archive (the Docker archive layout
# containerd imports: manifest.json, the image config, one uncompressed layer tar) of the tree
# ROOT, with CONFIG_JSON as the image's runtime config (Entrypoint, User, Env...).
archive() {
  local ref=$1 file=$2 config=$3 root=$4
  local tmp="$out/.build.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/layer"
  tar --numeric-owner --sort=name --mtime=@0 -C "$root" -cf "$tmp/layer/layer.tar" .
  local diff_id
  diff_id=$(sha256sum "$tmp/layer/layer.tar" | cut -d' ' -f1)
  jq -n --argjson c "$config" --arg d "sha256:$diff_id" '{
    architecture: "amd64", os: "linux", config: $c,
    rootfs: {type: "layers", diff_ids: [$d]}}' > "$tmp/config.json"
  local config_id
  config_id=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
  mv "$tmp/config.json" "$tmp/$config_id.json"
  jq -n --arg c "$config_id.json" --arg r "$ref" \
    '[{Config: $c, RepoTags: [$r], Layers: ["layer/layer.tar"]}]' > "$tmp/manifest.json"
  tar -C "$tmp" -cf "$out/.$file.tmp" manifest.json "$config_id.json" layer/layer.tar
  rm -rf "$tmp"
  mv "$out/.$file.tmp" "$out/$file"
  echo "build-images: $ref -> $out/$file ($(du -h "$out/$file" | cut -f1))"
}

# fresh FILE STAMP: the archive exists and was built from STAMP.
fresh() { [ -f "$out/$1" ] && [ "$(cat "$out/.$1.stamp" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$out/.$1.stamp"; }

# pause
pause_stamp="$(sha256sum "$bin/pause" | cut -d' ' -f1)"
if ! fresh pause.tar "$pause_stamp"; then
  root=$(mktemp -d)
  install -m 0755 "$bin/pause" "$root/pause"
  archive "iop/pause:$KUBE_VERSION" pause.tar '{"Entrypoint":["/pause"],"User":"65535:65535"}' "$root"
  rm -rf "$root"
  stamp pause.tar "$pause_stamp"
fi

# MySQL server and Router, from the Debian unstable root filesystem
rootfs="$IOP_CACHE/mysql97/rootfs"
[ -x "$rootfs/usr/sbin/mysqld" ] || { echo "build-images: $rootfs is missing: run e2e/lib/install-mysql97.sh" >&2; exit 1; }
mysql_version=$(chroot "$rootfs" /usr/sbin/mysqld --version | sed -n 's/.*Ver \([0-9.]*\).*/\1/p')
[ -n "$mysql_version" ] || { echo "build-images: no version from $rootfs/usr/sbin/mysqld" >&2; exit 1; }
mysql_stamp="$mysql_version $(stat -c %Y "$rootfs/usr/sbin/mysqld") $(du -s "$rootfs" | cut -f1)"
if ! fresh mysql.tar "$mysql_stamp"; then
  archive "iop/mysql-debian:$mysql_version" mysql.tar \
    '{"User":"999:999","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["mysqld"]}' \
    "$rootfs"
  stamp mysql.tar "$mysql_stamp"
fi

# The operator: its binary and the shared libraries it links (ldd), a passwd entry for 65532.
profile="${IOP_OPERATOR_PROFILE:-dev}"
cargo build --locked --profile "$profile" --bin innodb-operator
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
operator="$CARGO_TARGET_DIR/$dir/innodb-operator"
operator_stamp="$profile $(sha256sum "$operator" | cut -d' ' -f1)"
if ! fresh operator.tar "$operator_stamp"; then
  root=$(mktemp -d)
  install -D -m 0755 "$operator" "$root/usr/local/bin/innodb-operator"
  for lib in $(ldd "$operator" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
  mkdir -p "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  [ -f /etc/ssl/certs/ca-certificates.crt ] &&
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  archive innodb-operator:local operator.tar \
    '{"User":"65532:65532","Entrypoint":["/usr/local/bin/innodb-operator"]}' "$root"
  rm -rf "$root"
  stamp operator.tar "$operator_stamp"
fi
