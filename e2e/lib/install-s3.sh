#!/usr/bin/env bash
# Builds the MinIO S3 server from its Go module (no prebuilt binary download) into
# $IOP_CACHE/bin/minio. Idempotent: a cached binary of the pinned version is reused.
# MinIO rather than s3s-fs: it is the S3 server operators actually run next to Kubernetes, and it
# implements the whole multipart API (list/abort uploads, part-size checks) that the fault tests
# assert on.
set -euo pipefail
IOP_CACHE="${IOP_CACHE:-/root/.cache/innodb-operator}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
bin="$IOP_CACHE/bin/minio"
stamp="$IOP_CACHE/bin/minio.version"
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
  echo "minio $MINIO_VERSION cached at $bin"; exit 0
fi
command -v go >/dev/null || { echo "go not found: install Go (golang from Debian or the toolchain) first" >&2; exit 1; }
mkdir -p "$IOP_CACHE/bin"
export GOPATH="$IOP_CACHE/go/path" GOMODCACHE="$IOP_CACHE/go/mod" GOCACHE="$IOP_CACHE/go/build"
export GOFLAGS=-trimpath GOTOOLCHAIN=local CGO_ENABLED=0
GOBIN="$IOP_CACHE/bin" nice -n 10 go install "github.com/minio/minio@$MINIO_VERSION"
echo "$MINIO_VERSION" >"$stamp"
"$bin" --version | head -1
