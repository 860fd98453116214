//! initkit makes a daemon's init system (systemd, launchd) own its socket and
//! its single instance.
//!
//! Module map (dependencies flow one way: `cli` → `backend` → `render` →
//! `manifest`; `orphan` → `scan`; `activation` depends on nothing else here):
//!
//! | module | what it models | pure? |
//! |---|---|---|
//! | [`activation`] | what a managed daemon links: sockets by name, sd_notify, the off-init guard | reads the OS |
//! | `manifest` | TOML manifest → validated `Manifest` | pure |
//! | `render` | manifest → systemd units and launchd plists | pure |
//! | `scan` | a snapshot of the process table, `/proc/locks`, `/proc/net/unix` | reads the OS through one function |
//! | `orphan` | (snapshot, manifest, manager view) → findings | pure |
//! | `backend` | install, start, stop, status on systemd (D-Bus) and launchd (launchctl) | talks to managers |
//!
//! Everything except `activation` sits behind the default `tools` feature, so
//! a daemon that depends on `initkit` with `default-features = false` pulls in
//! std, nix and libc only.

pub mod activation;

#[cfg(feature = "tools")]
pub mod backend;
#[cfg(feature = "tools")]
pub mod dirs;
#[cfg(feature = "tools")]
pub mod fsutil;
#[cfg(feature = "tools")]
pub mod manifest;
#[cfg(feature = "tools")]
pub mod orphan;
#[cfg(feature = "tools")]
pub mod render;
#[cfg(feature = "tools")]
pub mod scan;
