//! Sockets handed over as bare descriptors (as systemd passes them) keep their kind.

use std::os::fd::OwnedFd;

use chatmail_common::daemon::Listener;

#[tokio::test]
async fn a_passed_socket_is_recognised_by_its_address_family() {
    let dir = tempfile::tempdir().unwrap();
    let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s.sock")).unwrap();
    let listener = Listener::from_fd(OwnedFd::from(unix)).unwrap();
    assert!(matches!(listener, Listener::Unix(_)), "{listener:?}");

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let Listener::Tcp(listener) = Listener::from_fd(OwnedFd::from(tcp)).unwrap() else {
        panic!("a TCP socket taken for another kind");
    };
    assert_eq!(listener.local_addr().unwrap().port(), port);

    // not a socket at all
    let file = std::fs::File::open(dir.path()).unwrap();
    assert!(Listener::from_fd(OwnedFd::from(file)).is_err());
}
