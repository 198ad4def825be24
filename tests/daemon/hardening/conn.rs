//! Connections (issue 11, item 4): idle, slow and too many sockets on both
//! ports. Before `src/serve.rs` nothing was ever closed and 1,100 idle
//! sockets stopped both ports from accepting.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::{temp_dir, wait_for, Daemon};

/// The daemon with `[http.ai]` and `[http.nvr]` set to `limits` (TOML lines).
fn daemon_with(limits: &str) -> (Daemon, std::path::PathBuf) {
    let dir = temp_dir("conn-config");
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, format!("[http.ai]\n{limits}\n[http.nvr]\n{limits}\n")).unwrap();
    let d = Daemon::start(&[("OPENNVR_CONFIG", cfg.to_str().unwrap())]);
    (d, dir)
}

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.x).
fn connect_from(from: &str, addr: &str) -> std::io::Result<TcpStream> {
    let target: SocketAddr = addr.parse().unwrap();
    let sock = socket_from(from)?;
    sock.connect(&target.into())?;
    Ok(sock.into())
}

fn socket_from(from: &str) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into())?;
    Ok(s)
}

/// Waits (bounded) for the server to close `s`; true if it did.
fn closed_by_server(mut s: TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A response (408, 503...) may come first; keep reading to the close.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// A whole `GET /health` from `from`; the status code, or `None` when the
/// connection was refused or closed without one.
fn health_status(from: &str, addr: &str) -> Option<u16> {
    let mut s = connect_from(from, addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn idle_slow_header_and_slow_body_connections_are_closed() {
    let (d, _cfg) = daemon_with("header_timeout_s = 2\nbody_timeout_s = 3");
    let limit = Duration::from_secs(30);
    for addr in [&d.ai, &d.nvr] {
        // Connected, nothing sent.
        let idle = connect_from("127.0.0.1", addr).unwrap();
        assert!(closed_by_server(idle, limit), "idle connection to {addr}");
        // Half a request head, then silence (slowloris).
        let mut slow = connect_from("127.0.0.1", addr).unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        assert!(closed_by_server(slow, limit), "slow headers to {addr}");
        // A finished request, then an idle keep-alive connection.
        let mut ka = connect_from("127.0.0.1", addr).unwrap();
        ka.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        assert!(closed_by_server(ka, limit), "idle keep-alive to {addr}");
    }
    // A body promised and never finished.
    let mut body = connect_from("127.0.0.1", &d.nvr).unwrap();
    body.write_all(
        b"POST /api/v1/auth/login-json HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"username\":",
    )
    .unwrap();
    assert!(closed_by_server(body, limit), "slow body to 8000");
    let mut body = connect_from("127.0.0.1", &d.ai).unwrap();
    body.write_all(
        b"POST /infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"task\":",
    )
    .unwrap();
    assert!(closed_by_server(body, limit), "slow body to 9100");
    assert_eq!(health_status("127.0.0.1", &d.nvr), Some(200));
}

#[test]
fn connection_caps_keep_one_client_from_taking_the_port() {
    let (d, _cfg) =
        daemon_with("max_connections = 12\nmax_connections_per_ip = 6\nheader_timeout_s = 120");
    let fds_before = d.open_fds();
    // One client opens 60 idle sockets to each port.
    let mut held = Vec::new();
    for addr in [&d.nvr, &d.ai] {
        for _ in 0..60 {
            if let Ok(s) = connect_from("127.0.0.1", addr) {
                held.push(s);
            }
        }
    }
    // The daemon holds at most 6 of them per port; the rest were closed.
    let settled = wait_for(Duration::from_secs(30), || {
        let n = d.open_fds();
        (n <= fds_before + 2 * 6 + 4).then_some(n)
    });
    assert!(
        settled.is_some(),
        "daemon holds {} descriptors (was {fds_before}) for 120 sockets from one client",
        d.open_fds()
    );
    // That client is refused with a 503; another client still gets in.
    assert_eq!(health_status("127.0.0.1", &d.nvr), Some(503));
    assert_eq!(health_status("127.0.0.2", &d.nvr), Some(200));
    assert_eq!(health_status("127.0.0.2", &d.ai), Some(200));
    // The port-wide cap: two more clients fill it, the next is refused.
    for from in ["127.0.0.2", "127.0.0.3"] {
        for _ in 0..3 {
            held.push(connect_from(from, &d.nvr).unwrap());
        }
    }
    let full = wait_for(Duration::from_secs(30), || {
        (health_status("127.0.0.4", &d.nvr) == Some(503)).then_some(())
    });
    assert!(full.is_some(), "port-wide cap of 12 not enforced");
    // Slots come back when sockets close.
    held.clear();
    let back = wait_for(Duration::from_secs(30), || {
        (health_status("127.0.0.1", &d.nvr) == Some(200)).then_some(())
    });
    assert!(
        back.is_some(),
        "slots did not come back after the sockets closed"
    );
}
