//! A node stand-in behind a real admin server, and a minimal HTTP/1.1 client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use edgeguard_admin::{MemoryControl, RunningAdmin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TOKEN: &str = "s3cret-token";

pub const CONFIG: &str = r#"
[node]
name = "edge-1"
tier = "edge"
listen = ["127.0.0.1:18080"]

[admin]
listen = "127.0.0.1:19090"
token = "s3cret-token"

[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "10m"
rate = "10r/s"

[[domain]]
name = "www.example.com"
origins = ["127.0.0.1:8081"]
limit_req = [{ zone = "perip", burst = 5, nodelay = true }]

[[domain]]
name = "shop.example.com"
origins = ["127.0.0.1:8082"]
parents = ["10.1.0.1:8080", "10.1.0.2:8080"]
"#;

pub struct Harness {
    pub control: Arc<MemoryControl>,
    pub admin: RunningAdmin,
    pub addr: SocketAddr,
    pub _dir: tempfile::TempDir,
}

pub async fn start() -> Harness {
    start_with(CONFIG, Some(TOKEN)).await
}

pub async fn start_with(config: &str, token: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = edgeguard_config::parse_with_env(config, |_| None).expect("test config is valid");
    let control = Arc::new(
        MemoryControl::new(config, dir.path())
            .expect("activity log")
            .with_addresses(vec!["192.0.2.10".parse().expect("ip")]),
    );
    let admin = edgeguard_admin::start(
        "127.0.0.1:0".parse().expect("addr"),
        token.map(str::to_owned),
        control.clone(),
    )
    .await
    .expect("admin server starts");
    let addr = admin.local_addr();
    Harness {
        control,
        admin,
        addr,
        _dir: dir,
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `message`s of an error answer.
    pub fn messages(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["message"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Harness {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        raw(self.addr, method, path, Some(TOKEN), content_type, body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, b"").await
    }

    pub async fn send_json(&self, method: &str, path: &str, body: serde_json::Value) -> Answer {
        self.call(
            method,
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
        .await
    }
}

/// One request on its own connection (`Connection: close`), answer read to the end.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer (413) before reading a large body, and close: a failed write is not an error here.
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("answer within 10 s");
    parse_answer(&out)
}

fn parse_answer(bytes: &[u8]) -> Answer {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}
