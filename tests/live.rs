//! Live capture on `lo` and on a veth pair between network namespaces made here (root only:
//! CI runs as root; elsewhere each test prints why it is skipped). Real sockets make the
//! traffic: a TCP exchange with a local listener, an attempt to a closed port, a UDP exchange.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn root_or_skip(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    println!("{test}: skipped: live capture needs root (CI runs as root)");
    false
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until `file` holds a `stats` event: the capture is running.
fn wait_running(child: &mut Child, file: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if lines(file).iter().any(|v| v["event_type"] == "stats") {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("synwatch live exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("synwatch live did not start within 10 s");
}

fn stop(child: Child, sig: Signal) -> (i32, String) {
    kill(Pid::from_raw(child.id() as i32), sig).expect("signal synwatch");
    let out = child.wait_with_output().expect("wait for synwatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn start(args: &[&str]) -> Child {
    Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start synwatch live")
}

/// A TCP exchange, a connection refused, a UDP request and answer; returns the ports.
fn make_traffic() -> (u16, u16, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        let _ = c.read(&mut buf);
        c.write_all(b"hello").unwrap();
    });
    let mut c = TcpStream::connect(("127.0.0.1", open)).unwrap();
    c.write_all(b"hi").unwrap();
    let mut buf = [0u8; 16];
    let _ = c.read(&mut buf);
    drop(c);
    server.join().unwrap();
    // A port nothing listens on: bind, note it, close.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(TcpStream::connect(("127.0.0.1", closed)).is_err());
    let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = srv.local_addr().unwrap().port();
    let cli = UdpSocket::bind("127.0.0.1:0").unwrap();
    cli.send_to(b"q", ("127.0.0.1", udp)).unwrap();
    let (_, from) = srv.recv_from(&mut buf).unwrap();
    srv.send_to(b"r", from).unwrap();
    cli.recv_from(&mut buf).unwrap();
    (open, closed, udp)
}

#[test]
fn live_on_lo_writes_records_stats_and_a_summary_on_sigint() {
    if !root_or_skip("live_on_lo") {
        return;
    }
    let dir = scratch("live-lo");
    let conn = dir.join("conn.jsonl");
    let alerts = dir.join("alerts.jsonl");
    // Loopback traffic of this test only: the ports are not known yet, so filter on the
    // ephemeral range and match records by port afterwards.
    let mut child = start(&[
        "live",
        "-i",
        "lo",
        "-f",
        "tcp or udp",
        "--conn",
        conn.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        "--stats-interval",
        "0.2",
    ]);
    wait_running(&mut child, &alerts);
    let (open, closed, udp) = make_traffic();
    std::thread::sleep(Duration::from_millis(500));
    let (code, out) = stop(child, Signal::SIGINT);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("live capture on lo"), "{out}");
    assert!(out.contains("dropped by the kernel"), "{out}");
    let recs = lines(&conn);
    let find = |port: u16, proto: &str| {
        recs.iter()
            .find(|r| r["dest_port"] == port && r["proto"] == proto)
            .unwrap_or_else(|| panic!("no {proto} record to port {port} in {recs:?}"))
    };
    let t = find(open, "TCP");
    assert_eq!(t["flow"]["conn_state"], "SF");
    assert_eq!(t["flow"]["handshake"], "completed");
    assert_eq!(t["flow"]["orig_bytes"], 2);
    assert_eq!(t["flow"]["resp_bytes"], 5);
    let r = find(closed, "TCP");
    assert_eq!(r["flow"]["conn_state"], "REJ");
    let u = find(udp, "UDP");
    assert_eq!(u["flow"]["conn_state"], "SF");
    assert_eq!(u["flow"]["history"], "Dd");
    let stats: Vec<_> = lines(&alerts)
        .into_iter()
        .filter(|v| v["event_type"] == "stats")
        .collect();
    assert!(stats.len() >= 2, "{stats:?}");
    let last = &stats[stats.len() - 1]["stats"];
    assert!(last["packets_captured"].as_u64().unwrap() >= 14, "{last}");
    assert_eq!(last["synwatch_drops"], 0);
}

#[test]
fn a_bad_filter_is_rejected_before_capture_starts() {
    if !root_or_skip("bad_filter") {
        return;
    }
    let o = run(&["live", "-i", "lo", "-f", "tcp port 80 or (", "--count", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad capture filter `tcp port 80 or (`"),
        "{err}"
    );
    let o = run(&["live", "-i", "no-such-if0", "--count", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such interface no-such-if0"));
}

#[test]
fn sighup_reopens_the_log() {
    if !root_or_skip("sighup") {
        return;
    }
    let dir = scratch("live-hup");
    let conn = dir.join("conn.jsonl");
    let mut child = start(&[
        "live",
        "-i",
        "lo",
        "-f",
        "tcp or udp",
        "--conn",
        conn.to_str().unwrap(),
        "--stats-interval",
        "0.2",
    ]);
    wait_running(&mut child, &conn);
    // logrotate: move the file away, then SIGHUP.
    let moved = dir.join("conn.jsonl.1");
    std::fs::rename(&conn, &moved).unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    let start = Instant::now();
    while !conn.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(conn.exists(), "no new log after SIGHUP");
    let (open, _, _) = make_traffic();
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = stop(child, Signal::SIGTERM);
    assert_eq!(code, 0, "{out}");
    assert!(
        lines(&conn).iter().any(|r| r["dest_port"] == open),
        "the reopened log has the records"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&conn).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "mode {mode:o}");
}

/// Runs `ip` and says what failed.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Netns(Vec<&'static str>);

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn live_on_a_veth_between_namespaces() {
    if !root_or_skip("veth") {
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!("veth: skipped: iproute2 (`ip`) is not installed");
        return;
    }
    let (a, b) = ("swt-live-a", "swt-live-b");
    let _ = Command::new("ip").args(["netns", "del", a]).status();
    let _ = Command::new("ip").args(["netns", "del", b]).status();
    let guard = Netns(vec![a, b]);
    assert!(ip(&["netns", "add", a]) && ip(&["netns", "add", b]));
    assert!(ip(&[
        "-n", a, "link", "add", "swt-va", "type", "veth", "peer", "name", "swt-vb", "netns", b
    ]));
    assert!(ip(&[
        "-n",
        a,
        "addr",
        "add",
        "10.236.0.1/24",
        "dev",
        "swt-va"
    ]));
    assert!(ip(&[
        "-n",
        b,
        "addr",
        "add",
        "10.236.0.2/24",
        "dev",
        "swt-vb"
    ]));
    for (ns, dev) in [(a, "swt-va"), (b, "swt-vb")] {
        assert!(ip(&["-n", ns, "link", "set", dev, "up"]));
        assert!(ip(&["-n", ns, "link", "set", "lo", "up"]));
    }
    let dir = scratch("live-veth");
    let conn = dir.join("conn.jsonl");
    let mut child = Command::new("ip")
        .args(["netns", "exec", a, bin(), "live", "-i", "swt-va", "--conn"])
        .arg(&conn)
        .args(["--stats-interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_running(&mut child, &conn);
    // A TCP exchange from a to a listener in b, and an attempt on a closed port, by python3.
    let server = Command::new("ip")
        .args(["netns", "exec", b, "python3", "-c"])
        .arg("import socket;s=socket.socket();s.bind(('10.236.0.2',7000));s.listen();c,_=s.accept();c.recv(10);c.sendall(b'pong');c.close()")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let client = Command::new("ip")
        .args(["netns", "exec", a, "python3", "-c"])
        .arg("import socket\nc=socket.create_connection(('10.236.0.2',7000),timeout=3);c.sendall(b'ping');c.recv(10);c.close()\ntry:\n  socket.create_connection(('10.236.0.2',7001),timeout=3)\nexcept OSError: pass")
        .status()
        .unwrap();
    assert!(client.success());
    let _ = server.wait_with_output();
    std::thread::sleep(Duration::from_millis(300));
    // `ip netns exec` passes the signal on to synwatch.
    let (code, out) = stop(child, Signal::SIGINT);
    assert_eq!(code, 0, "{out}");
    let recs = lines(&conn);
    let t = recs
        .iter()
        .find(|r| r["dest_port"] == 7000)
        .unwrap_or_else(|| panic!("{recs:?}"));
    assert_eq!(t["flow"]["conn_state"], "SF");
    assert_eq!(t["src_ip"], "10.236.0.1");
    let r = recs.iter().find(|r| r["dest_port"] == 7001).unwrap();
    assert_eq!(r["flow"]["conn_state"], "REJ");
    drop(guard);
}

#[test]
fn user_switch_after_opening_the_interface() {
    if !root_or_skip("user") {
        return;
    }
    if nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .is_none()
    {
        println!("user: skipped: no user `nobody` here");
        return;
    }
    // The log directory must be writable by the user synwatch becomes.
    let dir = scratch("live-user");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let conn = dir.join("conn.jsonl");
    let o = run(&[
        "live",
        "-i",
        "lo",
        "--duration",
        "0.5",
        "--user",
        "nobody",
        "--conn",
        conn.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&conn).unwrap().uid();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    assert_eq!(
        owner,
        nobody.as_raw(),
        "the log was created by the unprivileged user"
    );
    let o = run(&[
        "live",
        "-i",
        "lo",
        "--duration",
        "0.2",
        "--user",
        "no-such-user-x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--user no-such-user-x: no such user"));
}
