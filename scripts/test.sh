#!/usr/bin/env bash
# The whole test suite, as CI runs it.
#
# Installs what is missing (scripts/setup.sh), starts a real systemd user
# manager (scripts/user-manager.sh), and sets INITKIT_REQUIRE_MANAGER=1 so a
# test that needs the manager fails instead of skipping. Extra arguments go to
# `cargo test` (e.g. scripts/test.sh golden).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export INITKIT_REQUIRE_MANAGER=1
export XDG_RUNTIME_DIR
XDG_RUNTIME_DIR=$(scripts/user-manager.sh start)
# Tests run the example daemon as a real program: build it as one (cargo test
# --all-targets builds examples only as test harnesses).
cargo build --locked --quiet --examples
cargo test --locked --all-targets "$@"
if [ $# -eq 0 ]; then
  scripts/check-macos.sh
fi
