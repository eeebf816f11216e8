# Shared settings for the e2e scripts. Source it; do not run it.
# Everything built or downloaded is cached under $IOP_CACHE (outside the repo) so a warm machine
# reuses it.
export IOP_CACHE="${IOP_CACHE:-/root/.cache/innodb-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IOP_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$IOP_CACHE"

# stage NAME CMD...: runs CMD with a header and its duration; stops the script when it fails.
stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== stage: $name"
  "$@"
  echo "=== stage: $name passed in $((SECONDS - start))s"
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && source "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; return 1; }
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
  cargo --version
}
