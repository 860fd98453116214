#!/usr/bin/env bash
# Type-check the macOS code paths on Linux (no macOS target can be installed
# here): --cfg initkit_check_macos compiles the launchd FFI and the libproc
# scanner alongside the Linux code. Also checks that the runtime library alone
# (no default features) depends on nothing but nix and libc.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}/check-macos
RUSTFLAGS="--cfg initkit_check_macos" cargo check --locked --quiet --lib --no-default-features
RUSTFLAGS="--cfg initkit_check_macos" cargo check --locked --quiet --all-targets
deps=$(cargo tree --locked -e normal --no-default-features --prefix none | awk '{print $1}' | sort -u | tr '\n' ' ')
for forbidden in zbus clap serde toml plist procfs anyhow thiserror; do
  case " $deps " in *" $forbidden "*) echo "check-macos: the runtime library pulls in $forbidden: $deps" >&2; exit 1 ;; esac
done
echo "check-macos: macOS code type-checks; runtime library depends on: $deps"
