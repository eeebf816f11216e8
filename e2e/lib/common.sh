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

# cargo_test ARGS...: `cargo test ARGS` whose pass/fail counts are added to the run's totals.
export IOP_TEST_LOG="${IOP_TEST_LOG:-$(mktemp -t iop-tests.XXXXXX)}"
cargo_test() {
  # A failing test's message says what failed; backtraces (IOP_BACKTRACE=1) would bury it.
  RUST_BACKTRACE="${IOP_BACKTRACE:-0}" cargo test --locked "$@" 2>&1 | tee -a "$IOP_TEST_LOG"
  return "${PIPESTATUS[0]}"
}

# test_totals: one closing line with every cargo test result of this run.
test_totals() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { printf "%d passed, %d failed\n", p, f }' "$IOP_TEST_LOG"
}

ensure_kubectl() {
  command -v kubectl >/dev/null 2>&1 && return 0
  echo "installing kubectl (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null
}
