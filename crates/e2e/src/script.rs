//! Timed request scripts: requests sent at fixed offsets from a common start, each on its own connection
//! unless it belongs to a pipeline, with status, limit variables and response time recorded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request that takes longer than this is recorded as failed, so a wedged server cannot hang a test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Time between planning and the first send, so every task is waiting before time 0.
const LEAD_IN: Duration = Duration::from_millis(30);
/// Largest response accepted (origin bodies are 100 bytes, error pages a few hundred).
const MAX_RESPONSE: usize = 1 << 20;

/// One request of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Send time in ms from the script's start.
    pub at_ms: u64,
    /// Host header: picks the site (nginx `server_name`, edgeguard `[[domain]] name`).
    pub host: String,
    /// Path with query, e.g. `/slow?ms=1000`. A query argument `ms=N` makes the origin answer after N ms.
    pub path: String,
    /// Steps with the same group are concurrent and compared as a multiset, since their order at the
    /// server is not determined.
    pub group: Option<u32>,
    /// Steps with the same pipeline id go in one write on one keep-alive connection, in script order; the
    /// pipeline is sent at the `at_ms` of its first step.
    pub pipeline: Option<u32>,
}

impl Step {
    pub fn get(at_ms: u64, host: &str, path: &str) -> Self {
        Self {
            at_ms,
            host: host.to_string(),
            path: path.to_string(),
            group: None,
            pipeline: None,
        }
    }

    pub fn in_group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    pub fn pipelined(mut self, pipeline: u32) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    /// The origin's hold time this request asks for (`ms=N`), 0 when none.
    pub fn hold_ms(&self) -> u64 {
        query_arg(&self.path, "ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// The first query argument `name` of `path` (raw, as nginx's `$arg_NAME`; names compare case-insensitively).
pub fn query_arg<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = path.split_once('?')?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// Where a script is sent, and which response headers carry `$limit_req_status` / `$limit_conn_status`.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub lr_header: &'static str,
    pub lc_header: &'static str,
}

/// What one step got back.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Status code, or the reason there was none.
    pub status: Result<u16, String>,
    /// `$limit_req_status`; `None` when the header is absent or empty (the variable is unset).
    pub lr: Option<String>,
    /// `$limit_conn_status`, same convention.
    pub lc: Option<String>,
    /// When the request was actually written, ms from the script's start.
    pub sent_ms: f64,
    /// From connect (or, pipelined, from the write) to the end of the response, in ms.
    pub elapsed_ms: f64,
}

/// Runs `steps` against `target` and returns one outcome per step, in step order.
pub async fn run_script(target: Target, steps: &[Step]) -> Vec<Outcome> {
    let start = tokio::time::Instant::now() + LEAD_IN;
    let mut tasks = Vec::new();
    let mut seen_pipelines = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let members: Vec<usize> = match step.pipeline {
            Some(p) if seen_pipelines.contains(&p) => continue,
            Some(p) => {
                seen_pipelines.push(p);
                (i..steps.len())
                    .filter(|&j| steps[j].pipeline == Some(p))
                    .collect()
            }
            None => vec![i],
        };
        let batch: Vec<Step> = members.iter().map(|&j| steps[j].clone()).collect();
        let at = start + Duration::from_millis(step.at_ms);
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let sent_ms = ms_since(start.into_std());
            let results = send_batch(target, &batch).await;
            results
                .into_iter()
                .map(|(status, lr, lc, elapsed_ms)| Outcome {
                    status,
                    lr,
                    lc,
                    sent_ms,
                    elapsed_ms,
                })
                .collect::<Vec<_>>()
        });
        tasks.push((members, task));
    }
    let mut out: Vec<Option<Outcome>> = vec![None; steps.len()];
    for (members, task) in tasks {
        let results: Vec<Outcome> = task.await.unwrap_or_default();
        for (k, &j) in members.iter().enumerate() {
            out[j] = Some(results.get(k).cloned().unwrap_or_else(|| Outcome {
                status: Err("request task failed".into()),
                lr: None,
                lc: None,
                sent_ms: f64::NAN,
                elapsed_ms: f64::NAN,
            }));
        }
    }
    out.into_iter().flatten().collect()
}

fn ms_since(t: Instant) -> f64 {
    let now = Instant::now();
    if now >= t {
        now.duration_since(t).as_secs_f64() * 1000.0
    } else {
        -(t.duration_since(now).as_secs_f64() * 1000.0)
    }
}

type Answer = (Result<u16, String>, Option<String>, Option<String>, f64);

async fn send_batch(target: Target, batch: &[Step]) -> Vec<Answer> {
    let began = Instant::now();
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange(target, batch, began)).await {
        Ok(Ok(answers)) => answers,
        Ok(Err(e)) => fail_all(batch.len(), e, began),
        Err(_) => fail_all(batch.len(), "timed out".into(), began),
    }
}

fn fail_all(n: usize, why: String, began: Instant) -> Vec<Answer> {
    let elapsed = began.elapsed().as_secs_f64() * 1000.0;
    (0..n)
        .map(|_| (Err(why.clone()), None, None, elapsed))
        .collect()
}

async fn exchange(target: Target, batch: &[Step], began: Instant) -> Result<Vec<Answer>, String> {
    let mut stream = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut request = String::new();
    for (k, step) in batch.iter().enumerate() {
        let connection = if k + 1 == batch.len() {
            "close"
        } else {
            "keep-alive"
        };
        request.push_str(&format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: {connection}\r\n\r\n",
            step.path, step.host
        ));
    }
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut reader = ResponseReader::new(stream);
    let mut answers = Vec::with_capacity(batch.len());
    for _ in batch {
        let head = reader.read_response().await?;
        let elapsed = began.elapsed().as_secs_f64() * 1000.0;
        answers.push((
            Ok(head.status),
            header(&head.headers, target.lr_header),
            header(&head.headers, target.lc_header),
            elapsed,
        ));
    }
    Ok(answers)
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

/// Just enough HTTP/1.1 response framing for pipelines: Content-Length, chunked, or read to close.
struct ResponseReader {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl ResponseReader {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.len() > MAX_RESPONSE {
            return Err("response too large".into());
        }
        let mut chunk = [0u8; 8192];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Head, String> {
        let (head, head_len, framing) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.ok_or("no status code")?;
                    let headers: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let framing = framing_of(&headers);
                    break (Head { status, headers }, len, framing);
                }
                Ok(httparse::Status::Partial) => {
                    if self.eof {
                        return Err("connection closed before a full response head".into());
                    }
                    self.fill().await?;
                }
                Err(e) => return Err(format!("bad response head: {e}")),
            }
        };
        self.buf.drain(..head_len);
        match framing {
            Framing::Length(n) => {
                while self.buf.len() < n {
                    if self.eof {
                        return Err("connection closed inside a body".into());
                    }
                    self.fill().await?;
                }
                self.buf.drain(..n);
            }
            Framing::Chunked => self.skip_chunked().await?,
            Framing::Close => {
                while !self.eof {
                    self.fill().await?;
                }
                self.buf.clear();
            }
        }
        Ok(head)
    }

    async fn skip_chunked(&mut self) -> Result<(), String> {
        loop {
            let line_end = loop {
                if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                if self.eof {
                    return Err("connection closed inside a chunk size".into());
                }
                self.fill().await?;
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
            // Chunk data plus its CRLF; the last chunk is followed by (no trailers here) one CRLF.
            let need = line_end + 2 + size + 2;
            while self.buf.len() < need {
                if self.eof {
                    return Err("connection closed inside a chunk".into());
                }
                self.fill().await?;
            }
            self.buf.drain(..need);
            if size == 0 {
                return Ok(());
            }
        }
    }
}

enum Framing {
    Length(usize),
    Chunked,
    Close,
}

fn framing_of(headers: &[(String, String)]) -> Framing {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return Framing::Chunked;
    }
    match get("content-length").and_then(|v| v.parse().ok()) {
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    }
}
