#!/usr/bin/env bash
# Stage the bundled examples the way a distribution package would, into a temp
# DESTDIR, and list the tree. Usage: scripts/package-example.sh [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr}
destdir=$(mktemp -d "${TMPDIR:-/tmp}/initkit-destdir.XXXXXX")
cargo build -q
# systemd units for every example, plus initkit's own completions and man page
target/debug/initkit generate examples/*.toml --platform systemd --destdir "$destdir" --prefix "$prefix" --cli-files
# launchd: only what needs no target user (system daemons); agents whose
# paths are per-user are rendered at install time instead
target/debug/initkit generate examples/webd.toml --platform launchd --destdir "$destdir" --prefix "$prefix"
echo
echo "staged under $destdir:"
(cd "$destdir" && find . -type f | sort | sed 's|^\./|  |')
