#!/usr/bin/env bash
# Idempotently creates the Python venv the cross-check tests use and installs Oracle's X DevAPI
# client (mysqlx-connector-python, module `mysqlx`) and protobuf into it.
# Prints the installed versions; the venv lives outside the repo under $IOP_CACHE/venv.
set -euo pipefail
source "$(dirname "$0")/common.sh"

venv="$IOP_CACHE/venv"
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
  python=python3
fi
if [ ! -x "$venv/bin/pip" ]; then
  # Debian's python3 lacks ensurepip until python3-venv is installed; a failed attempt leaves a
  # venv without pip behind, so start over.
  "$python" -m venv "$venv" 2>/dev/null || {
    rm -rf "$venv"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv "$venv"
  }
fi
if ! "$venv/bin/python" -c 'import mysqlx.protobuf, google.protobuf' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'mysqlx-connector-python>=9,<27' 'protobuf>=4.21,<7'
fi
"$venv/bin/python" -c 'import mysqlx, google.protobuf; print("mysqlx", mysqlx.__version__ if hasattr(mysqlx, "__version__") else "?", "protobuf", google.protobuf.__version__)'
