#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine, only if missing.
# Idempotent; does nothing when everything is present.
set -euo pipefail
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v systemd-socket-activate >/dev/null || need+=(systemd)
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
[ -e /usr/lib/systemd/user/dbus.socket ] || need+=(dbus-user-session)
command -v python3 >/dev/null || need+=(python3)
command -v setpriv >/dev/null || need+=(util-linux)
command -v useradd >/dev/null || need+=(passwd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${need[*]} (run as root, or install them)" >&2
    exit 2
  fi
  echo "setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
