#!/usr/bin/env bash
# Fuzzes the X protocol frame/message decoders for a bounded time:
#   e2e/lib/fuzz-xproto.sh [SECONDS]   (default 60)
# Installs cargo-fuzz (crates.io) under $IOP_CACHE/tools if it is not on PATH. cargo-fuzz needs
# nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. The corpus
# lives outside the repo ($IOP_CACHE/fuzz-corpus); e2e/fuzz/seeds holds the committed seeds.
# Fails if the fuzzer finds a crash (the input is saved under e2e/fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/lib/common.sh

seconds=${1:-60}
export PATH="$IOP_CACHE/tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  command -v c++ >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq g++ >/dev/null; }
  cargo install --locked --root "$IOP_CACHE/tools" cargo-fuzz
fi

corpus="$IOP_CACHE/fuzz-corpus/frame_decoder"
mkdir -p "$corpus"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$IOP_CACHE/target-fuzz"
cargo fuzz run --fuzz-dir e2e/fuzz frame_decoder "$corpus" e2e/fuzz/seeds/frame_decoder -- \
  -max_total_time="$seconds" -print_final_stats=1
