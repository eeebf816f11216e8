#!/usr/bin/env bash
# Installs MariaDB server and client from Debian (the data-path tests start their own instances
# with mariadb-install-db in temp dirs; the packaged service is never used). With --bench it also
# installs the tools the backup benchmark compares against: mydumper/myloader and sysbench.
set -euo pipefail
pkgs=(mariadb-server mariadb-client zstd)
[ "${1:-}" = "--bench" ] && pkgs+=(mydumper sysbench)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's service is not needed: keep postinst from starting it.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi
command -v mariadbd >/dev/null || command -v /usr/sbin/mariadbd >/dev/null
/usr/sbin/mariadbd --version
