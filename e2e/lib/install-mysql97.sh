#!/usr/bin/env bash
# Builds a Debian unstable (sid) root filesystem holding MySQL 9.7 (mysqld, mysql, mysqlrouter)
# under $IOP_CACHE/mysql97/rootfs, for the real-MySQL tests (e2e/realmysql), and tcpdump on the
# host. A no-op when warm.
#
# sid goes only into this root filesystem, never into the host's apt sources (an unpinned sid
# entry upgrades the host's libc and dpkg half-way). The Debian mirror is the one the host's own
# apt sources name, read at run time.
#
# The rootfs is built in a temp directory and renamed into place when complete, so an
# interrupted run never looks complete; it is rebuilt from scratch next time.
set -euo pipefail
source "$(dirname "$0")/common.sh"

dest="$IOP_CACHE/mysql97/rootfs"
work="$IOP_CACHE/mysql97/rootfs.building"

# debian_mirror: the first Debian (non-security) archive URI of the host's apt sources.
debian_mirror() {
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  local f
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources)
        # deb822: a stanza's URIs line names the mirror.
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" ;;
      *)
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" ;;
    esac
  done | grep -v -e security -e '^$' | grep '/debian/\?$' | head -n1
}

# unmount_all ROOT: unmounts every mount below ROOT, deepest first.
unmount_all() {
  local root
  root=$(realpath -m "$1")
  awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
}

# in_root CMD...: runs CMD inside the rootfs being built.
in_root() {
  chroot "$work" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive "$@"
}

build() {
  local mirror
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || { echo "no Debian mirror in the host's apt sources" >&2; return 1; }
  echo "mirror (from the host's apt sources): $mirror"

  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi

  [ -d "$work" ] && { unmount_all "$work"; rm -rf "$work"; }
  mkdir -p "$work"
  trap 'unmount_all "$work"' EXIT
  local t0=$SECONDS
  debootstrap --variant=minbase sid "$work" "$mirror" >"$IOP_CACHE/mysql97/debootstrap.log" 2>&1 ||
    { tail -20 "$IOP_CACHE/mysql97/debootstrap.log" >&2; return 1; }
  echo "debootstrap: $((SECONDS - t0))s"

  # The mirror's sid Release file may be past its Valid-Until date.
  echo 'Acquire::Check-Valid-Until "false";' >"$work/etc/apt/apt.conf.d/99iop-no-valid-until"
  # No service may start inside the build.
  printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
  chmod +x "$work/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$work/etc/resolv.conf"
  local m
  for m in proc sys dev dev/pts; do mount --bind "/$m" "$work/$m"; done

  t0=$SECONDS
  in_root apt-get update -qq
  in_root apt-get install -y -qq --no-install-recommends mysql-server-core mysql-client mysql-router >/dev/null
  echo "mysql packages: $((SECONDS - t0))s"

  # Pods run as uid/gid 999.
  in_root sh -c 'getent group mysql >/dev/null || groupadd -g 999 mysql;
                 getent passwd mysql >/dev/null || useradd -u 999 -g 999 -d /var/lib/mysql -s /bin/false -M mysql'
  in_root apt-get clean
  rm -f "$work/usr/sbin/policy-rc.d"
  rm -rf "$work/var/lib/apt/lists/"*

  unmount_all "$work"
  trap - EXIT
  mv "$work" "$dest"
}

# tcpdump on the host (its own suite): the TLS test captures the pod network's SQL port.
if ! command -v tcpdump >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpdump >/dev/null
fi

if [ ! -x "$dest/usr/sbin/mysqld" ]; then
  start=$SECONDS
  build
  echo "rootfs built in $((SECONDS - start))s"
fi
chroot "$dest" /usr/sbin/mysqld --version
