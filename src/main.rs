//! The `initkit` command: see `initkit --help` and README.md.
//!
//! `initkit exec` sits on every daemon start, so this binary keeps its own
//! start cheap (P2 in README.md, Benchmarks):
//!
//! - **`no_main`.** std's runtime setup is replaced by the two parts initkit
//!   relies on: a closed fd 0, 1 or 2 is opened on /dev/null, and SIGPIPE is
//!   ignored. Left out is the main thread's stack-overflow handler, whose
//!   setup reads and parses /proc/self/maps on every start; a stack overflow
//!   on the main thread ends in a plain SIGSEGV instead of Rust's message. A
//!   panic still prints its message and exits 101 (the thread shows as
//!   `<unnamed>`).
//! - **Static unwinder.** On GNU/Linux, build.rs links libgcc's unwinder
//!   (libgcc_eh.a) into the binary, so libgcc_s.so.1 is not loaded at start.
#![cfg_attr(not(test), no_main)]

mod cli;

#[cfg(initkit_static_unwinder)]
#[link(name = "gcc_eh", kind = "static")]
extern "C" {}

// Under `cargo test` the harness supplies the entry point and this `main`
// only keeps the command reachable, like an ordinary `fn main`.
#[cfg_attr(not(test), unsafe(no_mangle))]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    open_closed_std_fds();
    // SAFETY: SIG_IGN installs no handler code. As under std's runtime, a
    // write to a closed pipe returns EPIPE instead of killing initkit (or the
    // exec watcher before its cleanup). `initkit exec` restores the default
    // for the daemon (std's exec does).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A panic must not unwind into the C caller: report it as std's runtime
    // does (the hook has printed it), with exit code 101.
    let code = std::panic::catch_unwind(cli::main).map_or(101, i32::from);
    // `exit`, not a return: it flushes Rust's stdout buffer first.
    std::process::exit(code)
}

/// Open /dev/null on each of fds 0, 1 and 2 that is closed, as std's runtime
/// does. Otherwise the lock file or a socket `initkit exec` opens could land
/// on fd 1, and the daemon's output would go into it. Aborts when that is
/// impossible.
fn open_closed_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        {
            // SAFETY: open(2) of a constant, NUL-terminated path. The lowest
            // free descriptor is `fd` (the lower ones are open by now).
            let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if opened != fd {
                std::process::abort();
            }
        }
    }
}
