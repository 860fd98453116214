#!/usr/bin/env bash
# The whole test suite, as CI runs it. Starts a real systemd user manager
# (scripts/user-manager.sh) and makes every test that needs it mandatory.
set -euo pipefail
cd "$(dirname "$0")/.."
export INITKIT_REQUIRE_MANAGER=1
scripts/user-manager.sh start >/dev/null
cargo test --locked --all-targets "$@"
