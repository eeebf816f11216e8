#!/usr/bin/env bash
# Idempotent installer for the control-plane test tier: the Debian tools the testenv scripts use,
# a Go toolchain to build with, then the pinned control-plane binaries (cached under
# $IOP_CACHE/testenv/<kube version>/bin; a warm run takes seconds).
#   e2e/lib/install-testenv.sh [--node]
# --node: also what a real node needs (iptables, ipset for kube-router's firewall, conntrack, the
# CNI plugins, libseccomp for runc, dig) and its binaries (testenv.sh build-node), then the images
# it runs (build-images.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node=0
[ "${1:-}" = --node ] && node=1

missing=()
# Go itself needs no package: testenv.sh uses /usr/local/go or the go on PATH when it is new
# enough, and otherwise fetches the pinned toolchain from the Go module proxy.
# `ip` (iproute2): the failover benchmark puts the fake members on the pods' addresses.
for tool in curl openssl jq setsid base64 unzip ip; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  pkgs=()
  for tool in "${missing[@]}"; do
    case "$tool" in
      setsid) pkgs+=(util-linux) ;;
      base64) pkgs+=(coreutils) ;;
      ip) pkgs+=(iproute2) ;;
      *) pkgs+=("$tool") ;;
    esac
  done
  echo "install-testenv: apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates "${pkgs[@]}"
fi
if [ "$node" = 0 ]; then
  "$here/../testenv/testenv.sh" build
  exit 0
fi
pkgs=()
for p in iptables ipset conntrack containernetworking-plugins libseccomp-dev dnsutils gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
done
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "install-testenv: apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
"$here/../testenv/testenv.sh" build-node
"$here/install-mysql97.sh"
"$here/build-images.sh"
