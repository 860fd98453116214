//! Its own test binary because it sets LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES
//! and NOTIFY_SOCKET in this process and puts sockets at fds 3 and 4: no other
//! test may share the environment or those fd numbers. One test function, so
//! the steps run in order on one thread.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::Duration;

use initkit::activation::notify::{notify, NotifyState};
use initkit::activation::{self, FdError, Listeners};

fn fd_flags(fd: i32) -> i32 {
    // SAFETY: F_GETFD only reads descriptor flags; -1 means not open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) }
}

#[test]
fn sockets_and_notify_from_the_process_environment() {
    let dir = tempfile::tempdir().unwrap();

    // Not activated: nothing to take, and notify is a no-op.
    // SAFETY: this binary runs one test on one thread; nothing else reads the env.
    unsafe { activation::env::remove_activation_vars() };
    assert!(Listeners::take_from_env().unwrap().is_none());
    notify(&[NotifyState::Ready]).unwrap();

    // Put a unix listener at fd 3 and a tcp listener at fd 4, as systemd does.
    assert_eq!(fd_flags(3), -1, "fd 3 is free in this test binary");
    assert_eq!(fd_flags(4), -1, "fd 4 is free in this test binary");
    let unix = UnixListener::bind(dir.path().join("control.sock")).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    for (listener_fd, target) in [(unix.into_raw_fd(), 3), (tcp.into_raw_fd(), 4)] {
        // SAFETY: the listeners may themselves sit at 3 or 4: move each to a
        // high fd first, then dup2 it into place (dup2 clears CLOEXEC).
        unsafe {
            let high = libc::fcntl(listener_fd, libc::F_DUPFD_CLOEXEC, 100);
            assert!(high >= 100);
            libc::close(listener_fd);
            assert_eq!(libc::dup2(high, target), target);
            libc::close(high);
        }
    }
    assert_eq!(
        fd_flags(3) & libc::FD_CLOEXEC,
        0,
        "passed fds arrive inheritable"
    );

    // A wrapper's pid: a distinct, loud state; nothing is taken.
    std::env::set_var("LISTEN_PID", "1");
    std::env::set_var("LISTEN_FDS", "2");
    std::env::set_var("LISTEN_FDNAMES", "control:http");
    let err = Listeners::take_from_env().unwrap_err();
    assert!(
        matches!(err, FdError::PidMismatch { listen_pid: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("socket-activated but LISTEN_PID mismatch (a wrapper forked?)"),
        "{err}"
    );
    assert_ne!(fd_flags(3), -1, "a mismatch leaves the fds alone");

    std::env::set_var("LISTEN_PID", std::process::id().to_string());
    let mut sockets = activation::listeners(&["control"])
        .unwrap()
        .expect("activated");
    assert_eq!(sockets.names(), ["control", "http"]);
    assert_eq!(
        fd_flags(3) & libc::FD_CLOEXEC,
        libc::FD_CLOEXEC,
        "CLOEXEC set"
    );
    assert_eq!(
        fd_flags(4) & libc::FD_CLOEXEC,
        libc::FD_CLOEXEC,
        "CLOEXEC set"
    );
    let http = sockets.take_tcp_listener("http").unwrap();
    assert_eq!(http.local_addr().unwrap(), tcp_addr);
    assert_eq!(http.as_raw_fd(), 4);
    let control = sockets.take_unix_listener("control").unwrap();
    assert_eq!(control.as_raw_fd(), 3);
    assert!(
        matches!(Listeners::take_from_env(), Err(FdError::AlreadyTaken)),
        "the fds are handed out once per process"
    );

    // NOTIFY_SOCKET: a path gets the wire format.
    let rx_path = dir.path().join("notify");
    let rx = UnixDatagram::bind(&rx_path).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::env::set_var("NOTIFY_SOCKET", &rx_path);
    notify(&[NotifyState::Ready, NotifyState::Status("serving".into())]).unwrap();
    let mut buf = [0u8; 128];
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving\n");

    // WATCHDOG_USEC for this pid.
    std::env::set_var("WATCHDOG_USEC", "2000000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    assert_eq!(
        activation::env::watchdog_usec().unwrap(),
        Some(Duration::from_secs(2))
    );

    // Children do not inherit the variables once removed.
    // SAFETY: still one thread touching the environment.
    unsafe { activation::env::remove_activation_vars() };
    for var in activation::env::ACTIVATION_VARS {
        assert!(std::env::var_os(var).is_none(), "{var} removed");
    }
    drop((control, http));
}
