//! The access log (`node.access_log`), written off the request path: a request pushes one compact
//! [`Record`] (reference-counted handles to what it already had, no formatting) into a bounded channel; a
//! background thread formats the records as JSON lines or nginx `combined` into a `BufWriter` flushed about
//! every second. A full channel drops the record and counts it (`edgeguard_access_log_dropped_total`): the
//! request path never waits on the disk.
//!
//! JSON fields are those of `docs/store.md` (`time`, `client`, `host`, `method`, `uri`, `status`, `bytes`,
//! `user_agent`) plus `referer`, `decision`, `upstream`, `cache`, `request_time` and `upstream_time` (seconds),
//! so `edgeguard recommend --log` reads the log back. `combined` is nginx's, byte for byte in layout, with
//! nginx's `\xHH` escaping inside quoted fields.
//!
//! The record is taken when the response head is ready: `bytes` is the body length when known (cached and
//! local answers, upstream answers with `Content-Length`), else 0; `request_time` ends at the response head.
//!
//! Log rotation: [`AccessLog::reopen`] (called by `RunningNode::reopen_logs` and on every reload) makes the
//! writer reopen the path within a second, so a rotated file is let go of.

use std::fmt::Write as _;
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

use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::error::ProxyError;
use crate::metrics::Decision;
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
            buf: String::with_capacity(512),
        };
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| ProxyError::Config(format!("cannot start the access log writer: {e}")))?;
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
        .map_err(|e| {
            ProxyError::Config(format!(
                "node.access_log {}: cannot open: {e}",
                path.display()
            ))
        })
}

struct Writer {
    path: PathBuf,
    format: AccessLogFormat,
    out: BufWriter<File>,
    reopen: Arc<AtomicBool>,
    buf: String,
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
        if let Err(e) = self.out.write_all(self.buf.as_bytes()) {
            tracing::error!(path = %self.path.display(), "access log write failed: {e}");
        }
    }
}

fn host_of(r: &Record) -> String {
    match (&r.domain, &r.line.host, r.line.uri.authority()) {
        (Some(d), _, _) => d.name.clone(),
        (None, Some(h), _) => String::from_utf8_lossy(h.as_bytes()).into_owned(),
        (None, None, Some(a)) => a.as_str().to_owned(),
        (None, None, None) => String::new(),
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

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_field(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, ",\"{name}\":");
    json_str(out, value);
}

/// One JSON line (with its newline).
pub(crate) fn json_line(out: &mut String, r: &Record) {
    out.push_str("{\"time\":\"");
    rfc3339(out, r.line.time);
    out.push('"');
    let _ = write!(out, ",\"client\":\"{}\"", r.client);
    json_field(out, "host", &host_of(r));
    json_field(out, "method", r.line.method.as_str());
    json_field(out, "uri", uri_of(r));
    let _ = write!(out, ",\"status\":{},\"bytes\":{}", r.status, r.bytes);
    if let Some(ua) = &r.line.user_agent {
        json_field(out, "user_agent", &String::from_utf8_lossy(ua.as_bytes()));
    }
    if let Some(referer) = &r.line.referer {
        json_field(out, "referer", &String::from_utf8_lossy(referer.as_bytes()));
    }
    json_field(out, "decision", r.decision.as_str());
    if let Some(p) = &r.upstream {
        json_field(out, "upstream", upstream_addr(p));
    }
    if let Some(c) = r.cache {
        json_field(out, "cache", c.as_str());
    }
    let _ = write!(out, ",\"request_time\":{:.3}", r.request_time.as_secs_f64());
    if let Some(t) = r.upstream_time {
        let _ = write!(out, ",\"upstream_time\":{:.3}", t.as_secs_f64());
    }
    out.push_str("}\n");
}

/// nginx's default escaping of a quoted log field: `"`, `\`, controls and non-ASCII bytes as `\xHH`.
fn nginx_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(char::from(b));
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
pub(crate) fn combined_line(out: &mut String, r: &Record) {
    let _ = write!(out, "{} - - [", r.client);
    clf_time(out, r.line.time);
    out.push_str("] \"");
    nginx_escaped(out, r.line.method.as_str().as_bytes());
    out.push(' ');
    nginx_escaped(out, uri_of(r).as_bytes());
    out.push(' ');
    out.push_str(version_str(r.line.version));
    let _ = write!(out, "\" {} {} \"", r.status, r.bytes);
    match &r.line.referer {
        Some(v) => nginx_escaped(out, v.as_bytes()),
        None => out.push('-'),
    }
    out.push_str("\" \"");
    match &r.line.user_agent {
        Some(v) => nginx_escaped(out, v.as_bytes()),
        None => out.push('-'),
    }
    out.push_str("\"\n");
}

/// Civil date (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    min: u64,
    sec: u64,
    millis: u32,
}

fn split_time(t: SystemTime) -> Parts {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = civil(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    Parts {
        year,
        month,
        day,
        hour: rem / 3600,
        min: rem % 3600 / 60,
        sec: rem % 60,
        millis: d.subsec_millis(),
    }
}

/// `2015-05-17T10:05:03.250Z`
pub(crate) fn rfc3339(out: &mut String, t: SystemTime) {
    let p = split_time(t);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.min, p.sec, p.millis
    );
}

/// `17/May/2015:10:05:03 +0000`
pub(crate) fn clf_time(out: &mut String, t: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let p = split_time(t);
    let month = MONTHS
        .get(p.month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    let _ = write!(
        out,
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
        p.day, p.year, p.hour, p.min, p.sec
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    #[test]
    fn times() {
        let mut s = String::new();
        rfc3339(&mut s, at(1_431_857_103, 250));
        assert_eq!(s, "2015-05-17T10:05:03.250Z");
        s.clear();
        clf_time(&mut s, at(1_431_857_103, 250));
        assert_eq!(s, "17/May/2015:10:05:03 +0000");
        s.clear();
        rfc3339(&mut s, at(951_782_400, 0));
        assert_eq!(s, "2000-02-29T00:00:00.000Z", "leap day");
        s.clear();
        rfc3339(&mut s, at(0, 0));
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn civil_matches_a_day_by_day_walk() {
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        for days in 0..(200 * 366) {
            assert_eq!(civil(days), (y, m, d), "day {days}");
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        nginx_escaped(&mut s, b"a\"b\\c\x01\xff");
        assert_eq!(s, "a\\x22b\\x5Cc\\x01\\xFF");
        s.clear();
        json_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
