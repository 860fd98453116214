//! Link the `initkit` binary's unwinder statically on GNU/Linux.
//!
//! Rust's std needs an unwinder; on GNU/Linux it comes from libgcc_s.so.1,
//! which the dynamic loader then maps, relocates and initialises (its
//! constructor runs CPUID, which traps to the hypervisor in a VM) on every
//! start of `initkit exec`. libgcc_eh.a is the same unwinder as an archive
//! (what `gcc -static-libgcc` links). When the C compiler knows it, this sets
//! `initkit_static_unwinder` and src/main.rs links it; otherwise (another
//! target, a cross build, no GCC, `crt-static`) nothing changes.
//!
//! Only the binary links it (src/main.rs): the library, which daemons link
//! for `initkit::activation`, leaves their link alone.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("HOST") == var("TARGET");
    let gnu_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let crt_static = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if !(native && gnu_linux) || crt_static {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let Ok(out) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let printed = String::from_utf8_lossy(&out.stdout);
    let archive = Path::new(printed.trim());
    // An unknown file is printed back as the bare name.
    if !out.status.success() || !archive.is_absolute() || !archive.is_file() {
        return;
    }
    if let Some(dir) = archive.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-cfg=initkit_static_unwinder");
    }
}
