//! The binary under test as its users run it: `edgeguard run --config FILE`, its addresses read from its log.
#![allow(dead_code)] // Each test file uses its own part of this.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgeguard");

/// A running `edgeguard run`; killed on drop, [`Node::stop`] for a graceful stop.
pub struct Node {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Log lines up to the one that gave the last address.
    pub startup: Vec<String>,
    /// Every later log line.
    pub log: mpsc::Receiver<String>,
}

impl Node {
    /// Starts the binary on `config` and waits (20 s at most) until it logs its listen and admin addresses.
    pub fn start(config: &Path) -> Node {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("EDGEGUARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edgeguard runs");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut listen, mut admin) = (None, None);
        let mut startup = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while listen.is_none() || admin.is_none() {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the node logs its addresses");
            let addr = line
                .split("addr=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next()?.parse().ok());
            if line.contains("admin API") {
                admin = addr;
            } else if line.contains("listening") {
                listen = addr;
            }
            startup.push(line);
        }
        Node {
            child,
            listen: listen.expect("listen address"),
            admin: admin.expect("admin address"),
            startup,
            log: rx,
        }
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Waits (10 s at most) for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = self
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// SIGTERM, and the exit must be clean.
    pub fn stop(mut self) {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "node exit: {status}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 answer: status, lower-cased head, body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One request on a fresh connection (`Connection: close`; `Host: d.test` unless `headers` name one).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: d.test\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// An origin on threads of its own, keep-alive: each request's target (`/path?query`) goes to `answer`, whose
/// bytes (a whole HTTP/1.1 response) are written back. Request bodies are not read (the tests send none).
pub fn origin_with(answer: fn(&str) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let (mut first, mut line) = (String::new(), String::new());
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) if first.is_empty() => first = line.clone(),
                            Ok(_) => {}
                        }
                    }
                    let target = first.split_whitespace().nth(1).unwrap_or("/");
                    if out.write_all(&answer(target)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// `200 ok`, not cacheable.
pub fn ok_answer(_: &str) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nCache-Control: no-store\r\n\r\nok\n".to_vec()
}

/// Polls `f` every 20 ms for up to 5 s.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
