#!/usr/bin/env bash
# Idempotent installer for the control-plane test tier: the Debian tools the testenv scripts use,
# a Go toolchain to build with, then the pinned control-plane binaries (cached under
# $IOP_CACHE/testenv/<kube version>/bin; a warm run takes seconds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

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
"$here/../testenv/testenv.sh" build
