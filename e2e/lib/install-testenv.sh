#!/usr/bin/env bash
# Idempotent installer for the control-plane test tier: the Debian tools the testenv scripts use,
# a Go toolchain to build with, then the pinned control-plane binaries (cached under
# $IOP_CACHE/testenv/<kube version>/bin; a warm run takes seconds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

missing=()
for tool in curl openssl jq setsid base64; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
if ! command -v go > /dev/null && [ ! -x /usr/local/go/bin/go ]; then
  # Debian's Go may be older than the Kubernetes release needs; testenv.sh then lets it fetch
  # the right toolchain from the Go module proxy (GOTOOLCHAIN).
  missing+=(go)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  pkgs=()
  for tool in "${missing[@]}"; do
    case "$tool" in
      setsid) pkgs+=(util-linux) ;;
      base64) pkgs+=(coreutils) ;;
      go) pkgs+=(golang-go) ;;
      *) pkgs+=("$tool") ;;
    esac
  done
  echo "install-testenv: apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates "${pkgs[@]}"
fi
"$here/../testenv/testenv.sh" build
