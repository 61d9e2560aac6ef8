//! The access log (`node.access_log`), written off the request path: a request pushes one compact
//! [`Record`] (reference-counted handles to what it already had, no formatting) into a bounded channel; a
//! background thread formats the records as JSON lines or nginx `combined` into a `BufWriter` flushed about
//! every second. A full channel drops the record and counts it (`edgeguard_access_log_dropped_total`): the
//! request path never waits on the disk.
//!
//! JSON fields are those of `docs/store.md` (`time`, `client`, `host`, `method`, `uri`, `status`, `bytes`,
//! `user_agent`) plus `referer`, `decision`, `upstream`, `cache`, `request_time` and `upstream_time` (seconds),
//! so `edgeguard recommend --log` reads the log back; `serde_json` escapes them, `time` formats the timestamps.
//! `combined` is nginx's, byte for byte in layout, with nginx's `\xHH` escaping inside quoted fields.
//!
//! The record is taken when the response head is ready: `bytes` is the body length when known (cached and
//! local answers, upstream answers with `Content-Length`), else 0; `request_time` ends at the response head.
//!
//! Log rotation: [`AccessLog::reopen`] (called by `RunningNode::reopen_logs` and on every reload) makes the
//! writer reopen the path within a second, so a rotated file is let go of.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use edgeguard_cache::CacheStatus;
use edgeguard_config::AccessLogFormat;
use http::{HeaderValue, Method, Request, Response, Uri, Version, header};
use http_body::Body as _;
use hyper::body::Incoming;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::decision::Decision;
use crate::error::ProxyError;
use crate::runtime::DomainRt;
use crate::upstream::UpstreamPool;

/// Records the channel holds before it drops.
const QUEUE: usize = 16_384;
/// How often the writer flushes (and notices a reopen request) when idle.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What a request brings to its log line, taken before the request is forwarded (its parts move upstream).
pub(crate) struct RequestLine {
    time: SystemTime,
    method: Method,
    uri: Uri,
    version: Version,
    host: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl RequestLine {
    /// Hot path: clones of reference-counted handles only.
    pub(crate) fn capture(req: &Request<Incoming>) -> Self {
        let h = req.headers();
        RequestLine {
            time: SystemTime::now(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            host: h.get(header::HOST).cloned(),
            referer: h.get(header::REFERER).cloned(),
            user_agent: h.get(header::USER_AGENT).cloned(),
        }
    }

    pub(crate) fn finish(
        self,
        ctx: &RequestCtx,
        resp: &Response<ProxyBody>,
        decision: Decision,
        elapsed: Duration,
    ) -> Record {
        Record {
            line: self,
            client: ctx.client_ip,
            domain: ctx.domain.clone(),
            status: resp.status().as_u16(),
            bytes: resp.body().size_hint().exact().unwrap_or(0),
            decision,
            upstream: ctx.cdn.upstream.clone(),
            cache: ctx.cdn.cache_status,
            request_time: elapsed,
            upstream_time: ctx.cdn.upstream_time,
        }
    }
}

/// One request, as queued for the writer.
pub(crate) struct Record {
    line: RequestLine,
    client: IpAddr,
    domain: Option<std::sync::Arc<DomainRt>>,
    status: u16,
    bytes: u64,
    decision: Decision,
    upstream: Option<Arc<UpstreamPool>>,
    cache: Option<CacheStatus>,
    request_time: Duration,
    upstream_time: Option<Duration>,
}

struct Sink {
    tx: SyncSender<Record>,
    reopen: Arc<AtomicBool>,
    path: PathBuf,
    format: AccessLogFormat,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The node's access log; no-op while `node.access_log` is absent.
#[derive(Default)]
pub(crate) struct AccessLog {
    sink: ArcSwapOption<Sink>,
    dropped: AtomicU64,
    /// Serialises `configure`/`close`.
    lock: Mutex<()>,
}

impl AccessLog {
    /// Whether a log is open (requests capture their line only then).
    pub(crate) fn is_on(&self) -> bool {
        self.sink.load().is_some()
    }

    /// Hot path: never blocks; a full queue drops the record and counts it.
    pub(crate) fn push(&self, record: Record) {
        let sink = self.sink.load();
        let Some(sink) = sink.as_ref() else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sink.tx.try_send(record)
        {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Applies `node.access_log` / `access_log_format`: opens a new writer if they changed, else asks the
    /// current one to reopen its file (rotation). On error the current log stays as it was.
    pub(crate) fn configure(
        &self,
        path: Option<&Path>,
        format: AccessLogFormat,
    ) -> Result<(), ProxyError> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = path else {
            self.close_locked();
            return Ok(());
        };
        // Not held past this block: `finish` below waits for every holder of the old sink to let go.
        {
            let current = self.sink.load();
            if let Some(s) = current.as_ref()
                && s.path == p
                && s.format == format
            {
                s.reopen.store(true, SeqCst);
                return Ok(());
            }
        }
        let file = open(p)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            path: p.to_path_buf(),
            format,
            out: BufWriter::with_capacity(64 * 1024, file),
            reopen: reopen.clone(),
            buf: Vec::with_capacity(512),
        };
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| ProxyError::AccessLogWriter { source })?;
        let old = self.sink.swap(Some(Arc::new(Sink {
            tx,
            reopen,
            path: p.to_path_buf(),
            format,
            thread: Mutex::new(Some(thread)),
        })));
        if let Some(old) = old {
            finish(old);
        }
        Ok(())
    }

    /// Asks the writer to reopen its file (after rotation).
    pub(crate) fn reopen(&self) {
        if let Some(s) = self.sink.load().as_ref() {
            s.reopen.store(true, SeqCst);
        }
    }

    /// Writes out everything queued and stops the writer.
    pub(crate) fn close(&self) {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.close_locked();
    }

    fn close_locked(&self) {
        if let Some(old) = self.sink.swap(None) {
            finish(old);
        }
    }
}

/// Drops the sender (the writer drains the queue and exits) and waits for the writer.
fn finish(sink: Arc<Sink>) {
    let thread = sink.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(sink);
    if let Some(t) = thread {
        // A request holding a momentary load of the old sink keeps the channel open a moment longer.
        let _ = t.join();
    }
}

fn open(path: &Path) -> Result<File, ProxyError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ProxyError::AccessLogOpen {
            path: path.to_path_buf(),
            source,
        })
}

struct Writer {
    path: PathBuf,
    format: AccessLogFormat,
    out: BufWriter<File>,
    reopen: Arc<AtomicBool>,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Record>) {
        let mut last_flush = std::time::Instant::now();
        loop {
            let got = rx.recv_timeout(FLUSH_EVERY);
            // Checked before writing what just arrived, so a request that starts after a reopen request (a
            // rotation) is logged to the new file, not the rotated one.
            if self.reopen.swap(false, SeqCst) {
                self.flush();
                match open(&self.path) {
                    Ok(f) => self.out = BufWriter::with_capacity(64 * 1024, f),
                    Err(e) => tracing::error!("access log not reopened: {e}"),
                }
            }
            match got {
                Ok(record) => self.write(&record),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_flush.elapsed() >= FLUSH_EVERY {
                self.flush();
                last_flush = std::time::Instant::now();
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!(path = %self.path.display(), "access log write failed: {e}");
        }
    }

    fn write(&mut self, r: &Record) {
        self.buf.clear();
        match self.format {
            AccessLogFormat::Json => json_line(&mut self.buf, r),
            AccessLogFormat::Combined => combined_line(&mut self.buf, r),
        }
        if let Err(e) = self.out.write_all(&self.buf) {
            tracing::error!(path = %self.path.display(), "access log write failed: {e}");
        }
    }
}

fn host_of(r: &Record) -> Cow<'_, str> {
    match (&r.domain, &r.line.host, r.line.uri.authority()) {
        (Some(d), _, _) => Cow::Borrowed(&d.name),
        (None, Some(h), _) => String::from_utf8_lossy(h.as_bytes()),
        (None, None, Some(a)) => Cow::Borrowed(a.as_str()),
        (None, None, None) => Cow::Borrowed(""),
    }
}

fn uri_of(r: &Record) -> &str {
    r.line
        .uri
        .path_and_query()
        .map_or_else(|| r.line.uri.path(), |pq| pq.as_str())
}

fn upstream_addr(p: &UpstreamPool) -> &str {
    p.label.split_once(' ').map_or(&p.label, |(_, a)| a)
}

/// Seconds to the millisecond, as the line has always carried them.
fn secs_ms(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// The JSON line's fields, in the order they are written; absent ones are left out.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    client: IpAddr,
    host: Cow<'a, str>,
    method: &'a str,
    uri: &'a str,
    status: u16,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referer: Option<Cow<'a, str>>,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'static str>,
    request_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_time: Option<f64>,
}

/// One JSON line (with its newline), escaped by `serde_json`.
pub(crate) fn json_line<'a>(out: &mut Vec<u8>, r: &'a Record) {
    let mut time = [0u8; 32];
    let time = rfc3339(&mut time, r.line.time);
    let lossy = |v: &'a HeaderValue| String::from_utf8_lossy(v.as_bytes());
    let line = JsonLine {
        time,
        client: r.client,
        host: host_of(r),
        method: r.line.method.as_str(),
        uri: uri_of(r),
        status: r.status,
        bytes: r.bytes,
        user_agent: r.line.user_agent.as_ref().map(lossy),
        referer: r.line.referer.as_ref().map(lossy),
        decision: r.decision.as_str(),
        upstream: r.upstream.as_deref().map(upstream_addr),
        cache: r.cache.map(CacheStatus::as_str),
        request_time: secs_ms(r.request_time),
        upstream_time: r.upstream_time.map(secs_ms),
    };
    // Serializing plain fields into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

/// nginx's default escaping of a quoted log field: `"`, `\`, controls and non-ASCII bytes as `\xHH`.
fn nginx_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// One nginx `combined` line (with its newline):
/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`.
pub(crate) fn combined_line(out: &mut Vec<u8>, r: &Record) {
    let _ = write!(out, "{} - - [", r.client);
    clf_time(out, r.line.time);
    out.extend_from_slice(b"] \"");
    nginx_escaped(out, r.line.method.as_str().as_bytes());
    out.push(b' ');
    nginx_escaped(out, uri_of(r).as_bytes());
    out.push(b' ');
    out.extend_from_slice(version_str(r.line.version).as_bytes());
    let _ = write!(out, "\" {} {} \"", r.status, r.bytes);
    match &r.line.referer {
        Some(v) => nginx_escaped(out, v.as_bytes()),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\" \"");
    match &r.line.user_agent {
        Some(v) => nginx_escaped(out, v.as_bytes()),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\"\n");
}

/// `2015-05-17T10:05:03.250Z`: UTC, milliseconds truncated.
const RFC3339_MS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
/// `17/May/2015:10:05:03 +0000`: nginx's `$time_local`, in UTC.
const CLF: &[BorrowedFormatItem<'_>] =
    format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");

/// The time as a UTC date-time; a clock before 1970 (or past what `time` holds) reads as the epoch.
fn utc(t: SystemTime) -> OffsetDateTime {
    let nanos = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    i128::try_from(nanos)
        .ok()
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Formats `t` as RFC 3339 with milliseconds into `buf` (24 bytes for years 0000..=9999).
pub(crate) fn rfc3339(buf: &mut [u8; 32], t: SystemTime) -> &str {
    let mut w = &mut buf[..];
    let n = utc(t).format_into(&mut w, RFC3339_MS).unwrap_or(0);
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// Appends `t` in nginx's `$time_local` layout, UTC.
pub(crate) fn clf_time(out: &mut Vec<u8>, t: SystemTime) {
    let _ = utc(t).format_into(out, CLF);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    fn rfc(t: SystemTime) -> String {
        rfc3339(&mut [0; 32], t).to_owned()
    }

    fn clf(t: SystemTime) -> String {
        let mut out = Vec::new();
        clf_time(&mut out, t);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times() {
        assert_eq!(rfc(at(1_431_857_103, 250)), "2015-05-17T10:05:03.250Z");
        assert_eq!(clf(at(1_431_857_103, 250)), "17/May/2015:10:05:03 +0000");
        assert_eq!(
            rfc(at(951_782_400, 0)),
            "2000-02-29T00:00:00.000Z",
            "leap day"
        );
        assert_eq!(rfc(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(clf(at(0, 0)), "01/Jan/1970:00:00:00 +0000");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            rfc(before),
            "1970-01-01T00:00:00.000Z",
            "a clock before 1970"
        );
        // Milliseconds are cut, not rounded.
        let t = UNIX_EPOCH + Duration::from_micros(1_999_999);
        assert_eq!(rfc(t), "1970-01-01T00:00:01.999Z");
    }

    #[test]
    fn escaping() {
        let mut s = Vec::new();
        nginx_escaped(&mut s, b"a\"b\\c\x01\xff");
        assert_eq!(s, b"a\\x22b\\x5Cc\\x01\\xFF");
    }

    #[test]
    fn times_to_the_millisecond() {
        assert_eq!(secs_ms(Duration::from_micros(2_499)), 0.002);
        assert_eq!(secs_ms(Duration::from_millis(1_500)), 1.5);
    }
}
