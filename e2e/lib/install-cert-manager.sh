#!/usr/bin/env bash
# Builds cert-manager's controllers (e2e/certmanager: cert-manager's own packages of the version
# its go.mod pins, wired by a short main) into $IOP_CACHE/bin/certmanager, and copies that
# version's CRDs from the Go module cache to $IOP_CACHE/cert-manager/crds. cert-manager's
# released binary is a module the Go module proxy does not serve. Idempotent: cached per
# version and source.
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/lib/common.sh
command -v go >/dev/null || { echo "go not found: install Go (golang from Debian or the toolchain) first" >&2; exit 1; }
export GOPATH="$IOP_CACHE/go/path" GOMODCACHE="$IOP_CACHE/go/mod" GOCACHE="$IOP_CACHE/go/build"
export GOFLAGS=-trimpath GOTOOLCHAIN=local CGO_ENABLED=0
bin="$IOP_CACHE/bin/certmanager"
crds="$IOP_CACHE/cert-manager/crds"
stamp="$IOP_CACHE/bin/certmanager.version"
want="$(cat e2e/certmanager/go.mod e2e/certmanager/go.sum e2e/certmanager/main.go | sha256sum | cut -d' ' -f1)"
if [ -x "$bin" ] && [ -d "$crds" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "cert-manager cached at $bin"; exit 0
fi
start=$SECONDS
mkdir -p "$IOP_CACHE/bin"
(cd e2e/certmanager && nice -n 10 go build -o "$bin.new" . && mv "$bin.new" "$bin")
module="$(cd e2e/certmanager && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)"
rm -rf "$crds.new" && mkdir -p "$crds.new"
cp "$module"/deploy/crds/*.yaml "$crds.new/"
rm -f "$crds.new/README.md"
rm -rf "$crds" && mv "$crds.new" "$crds"
echo "$want" >"$stamp"
echo "cert-manager $(cd e2e/certmanager && go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager) built in $((SECONDS - start))s"
