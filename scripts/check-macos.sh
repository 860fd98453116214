#!/usr/bin/env bash
# Type-check the macOS-only code (launchd activation) on Linux. The custom cfg
# `initkit_check_macos` compiles those modules next to the Linux ones; nothing
# is linked or run, so the launchd FFI is never called here.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} --cfg initkit_check_macos"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/check-macos"
cargo check --lib --no-default-features
cargo check --all-targets
