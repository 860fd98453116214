#!/usr/bin/env bash
# Start (or stop) a real systemd user manager on a machine whose PID 1 is not
# systemd, e.g. a CI container. Tests talk to it with systemctl --user and over
# D-Bus at $XDG_RUNTIME_DIR/bus.
#
#   scripts/user-manager.sh start   # idempotent; prints the XDG_RUNTIME_DIR to use
#   scripts/user-manager.sh stop    # stops the manager this script started (by pid)
#   scripts/user-manager.sh status
#
# Safety: the manager is started only after its own shell has moved into a
# delegated cgroup subtree (user.slice/user-UID.slice/user@UID.service) on both
# the name=systemd v1 hierarchy and the unified v2 hierarchy. Started anywhere
# else, `systemd --user` would treat `/` as its cgroup and move every process of
# the machine into its init.scope.
set -euo pipefail

uid=$(id -u)
runtime=/run/user/$uid
pidfile=$runtime/initkit-user-manager.pid
sub=user.slice/user-$uid.slice/user@$uid.service

running() {
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = systemd ]
}

wait_ready() {
  for _ in $(seq 1 100); do
    if [ -S "$runtime/bus" ] && [ -S "$runtime/systemd/private" ] &&
       XDG_RUNTIME_DIR=$runtime systemctl --user is-system-running >/dev/null 2>&1; then
      return 0
    fi
    # "degraded" is fine too: some default user units cannot start in a container
    state=$(XDG_RUNTIME_DIR=$runtime systemctl --user is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) [ -S "$runtime/bus" ] && return 0 ;; esac
    sleep 0.1
  done
  echo "user-manager: systemd --user did not become ready; see $runtime/initkit-user-manager.log" >&2
  return 1
}

start() {
  if running; then echo "$runtime"; return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "user-manager: run as root (it creates the delegated cgroup subtree)" >&2; exit 2
  fi
  if [ "$(cat /proc/1/comm)" = systemd ] && [ -z "${INITKIT_FORCE_USER_MANAGER:-}" ]; then
    echo "user-manager: PID 1 is systemd; use the real user@$uid.service instead" >&2; exit 2
  fi
  local v1=/sys/fs/cgroup/systemd v2=/sys/fs/cgroup/unified
  if [ ! -d "$v1" ] && [ ! -d "$v2" ]; then
    # pure cgroup v2 (unified) layout
    v2=/sys/fs/cgroup; v1=
  fi
  for h in $v1 $v2; do
    [ -f "$h/cgroup.procs" ] || { echo "user-manager: no cgroup hierarchy at $h" >&2; exit 2; }
    mkdir -p "$h/$sub"
  done
  mkdir -p /run/systemd/system "$runtime"
  chmod 0700 "$runtime"
  command -v dbus-daemon >/dev/null || { echo "user-manager: dbus-daemon is missing (apt-get install dbus)" >&2; exit 2; }
  # The inner shell moves itself into the delegated subtree on every hierarchy,
  # and only then execs systemd --user.
  setsid bash -c '
    set -e
    for h in '"$v1 $v2"'; do echo $$ > "$h/'"$sub"'/cgroup.procs"; done
    grep -q "'"$sub"'" /proc/self/cgroup
    exec env -i HOME="$HOME" USER="$(id -un)" XDG_RUNTIME_DIR='"$runtime"' PATH=/usr/bin:/bin \
      /usr/lib/systemd/systemd --user
  ' </dev/null >"$runtime/initkit-user-manager.log" 2>&1 &
  echo $! > "$pidfile"
  wait_ready
  echo "$runtime"
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$pidfile") XDG_RUNTIME_DIR=$runtime"; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
