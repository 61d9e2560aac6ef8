//! Streaming access-log reader for `edgeguard recommend --log` and `edgeguard replay`: nginx/Apache combined
//! lines and edgeguard's own JSON lines. Malformed lines are counted and skipped; only I/O errors stop a read.

use std::borrow::Cow;
use std::io::{self, BufRead, Read};
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::{parse_clf_time, parse_rfc3339};

/// Longer lines are malformed (and read past in pieces, so a file without newlines cannot exhaust memory).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// How many malformed line numbers [`LogStats`] remembers, for error messages.
const MALFORMED_SAMPLES: usize = 10;

/// One request of an access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix milliseconds.
    pub time_ms: i64,
    pub client: IpAddr,
    /// Empty when the request line had none (nginx logs garbage request lines as they came).
    pub method: String,
    pub uri: String,
    /// 0 when the log did not say.
    pub status: u16,
    pub bytes: u64,
    pub host: Option<String>,
    pub user_agent: Option<String>,
}

/// Layout of the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// nginx `combined` / Apache `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"` (and Apache `common`,
    /// which is the same without the last two fields).
    Combined,
    /// One JSON object per line, edgeguard's access log (see docs/store.md for the fields).
    Json,
    /// Per line: JSON if it starts with `{`, combined otherwise.
    Auto,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "combined" | "common" | "nginx" | "apache" => Ok(LogFormat::Combined),
            "json" => Ok(LogFormat::Json),
            "auto" => Ok(LogFormat::Auto),
            other => Err(format!(
                "unknown log format {other:?} (expected combined, json or auto)"
            )),
        }
    }
}

/// What a read went through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    pub parsed: u64,
    pub malformed: u64,
    pub blank: u64,
    /// 1-based numbers of the first malformed lines.
    pub malformed_samples: Vec<u64>,
    /// Earliest and latest request time seen (logs are not always in order).
    pub first_time_ms: Option<i64>,
    pub last_time_ms: Option<i64>,
    /// Lines whose point had already been closed when they arrived (see `recommend_from_log`).
    pub late_lines: u64,
}

/// Streams [`LogLine`]s out of any `BufRead`; iterate it, then look at [`stats`](Self::stats).
pub struct LogReader<R> {
    reader: R,
    format: LogFormat,
    buf: Vec<u8>,
    stats: LogStats,
}

impl<R: BufRead> LogReader<R> {
    pub fn new(reader: R, format: LogFormat) -> Self {
        LogReader {
            reader,
            format,
            buf: Vec::with_capacity(1024),
            stats: LogStats::default(),
        }
    }

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    pub fn into_stats(self) -> LogStats {
        self.stats
    }

    /// The next well-formed line, skipping (and counting) malformed and blank ones; `Ok(None)` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<LogLine>> {
        loop {
            self.buf.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.stats.lines += 1;
            let complete = self.buf.last() == Some(&b'\n');
            if !complete && self.buf.len() >= MAX_LINE_BYTES {
                self.skip_rest_of_line()?;
                self.note_malformed();
                continue;
            }
            let line = trim_ascii(&self.buf);
            if line.is_empty() {
                self.stats.blank += 1;
                continue;
            }
            let parsed = match self.format {
                LogFormat::Combined => parse_combined(line),
                LogFormat::Json => parse_json(line),
                LogFormat::Auto if line[0] == b'{' => parse_json(line),
                LogFormat::Auto => parse_combined(line),
            };
            match parsed {
                Some(l) => {
                    self.stats.parsed += 1;
                    self.stats.first_time_ms = Some(
                        self.stats
                            .first_time_ms
                            .map_or(l.time_ms, |t| t.min(l.time_ms)),
                    );
                    self.stats.last_time_ms = Some(
                        self.stats
                            .last_time_ms
                            .map_or(l.time_ms, |t| t.max(l.time_ms)),
                    );
                    return Ok(Some(l));
                }
                None => self.note_malformed(),
            }
        }
    }

    fn note_malformed(&mut self) {
        self.stats.malformed += 1;
        if self.stats.malformed_samples.len() < MALFORMED_SAMPLES {
            self.stats.malformed_samples.push(self.stats.lines);
        }
    }

    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.reader.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let len = chunk.len();
                    self.reader.consume(len);
                }
            }
        }
    }

    pub(crate) fn stats_mut(&mut self) -> &mut LogStats {
        &mut self.stats
    }
}

impl<R: BufRead> Iterator for LogReader<R> {
    type Item = io::Result<LogLine>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Splits off the field up to the next space.
fn word(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((&s[..end], s[end..].strip_prefix(b" ").unwrap_or(&s[end..])))
}

/// A `"..."` field with `\"` and `\\` escapes (as Apache and nginx write them); returns its raw inside and the
/// rest after the closing quote and one space.
fn quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = s.strip_prefix(b"\"")?;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => {
                let rest = &s[i + 1..];
                return Some((&s[..i], rest.strip_prefix(b" ").unwrap_or(rest)));
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(raw: &[u8]) -> String {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() && matches!(raw[i + 1], b'"' | b'\\') {
            out.push(raw[i + 1]);
            i += 2;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |v, &c| v * 10 + u64::from(c - b'0')))
}

fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// `%h %l %u [%t] "%r" %>s %b "referer" "agent"`; the last two are optional (Apache common).
pub(crate) fn parse_combined(line: &[u8]) -> Option<LogLine> {
    let (client, rest) = word(line)?;
    let client = parse_ip(client)?;
    // ident and user may be anything up to the bracket; only the bracketed time has a fixed shape.
    let open = rest.iter().position(|&b| b == b'[')?;
    let rest = &rest[open + 1..];
    let close = rest.iter().position(|&b| b == b']')?;
    let time_ms = parse_clf_time(&rest[..close])?;
    let rest = rest[close + 1..].strip_prefix(b" ")?;
    let (request, rest) = quoted(rest)?;
    let (status, rest) = word(rest)?;
    let status = u16::try_from(parse_u64(status)?)
        .ok()
        .filter(|s| *s <= 999)?;
    let (bytes, rest) = word(rest)?;
    let bytes = if bytes == b"-" { 0 } else { parse_u64(bytes)? };
    let user_agent = match quoted(rest) {
        Some((_referer, rest)) => quoted(rest)
            .map(|(ua, _)| unescape(ua))
            .filter(|ua| ua != "-"),
        None => None,
    };
    let request = unescape(request);
    let (method, uri) = split_request(&request);
    Some(LogLine {
        time_ms,
        client,
        method,
        uri,
        status,
        bytes,
        host: None,
        user_agent,
    })
}

/// `GET /path HTTP/1.1` into method and URI; a request line of another shape (`-`, TLS bytes sent to a plain
/// port) keeps the line, with an empty method and the raw text as URI, since it still was a request of that IP.
fn split_request(request: &str) -> (String, String) {
    match request.split_once(' ') {
        Some((method, rest)) if !method.is_empty() => {
            let uri = match rest.rsplit_once(' ') {
                Some((uri, proto)) if proto.starts_with("HTTP/") => uri,
                _ => rest,
            };
            (method.to_owned(), uri.to_owned())
        }
        _ => (String::new(), request.to_owned()),
    }
}

/// Field names of edgeguard's JSON access log; unknown fields are ignored so the writer may add more.
#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(default)]
    ts: Option<f64>,
    #[serde(borrow)]
    client: Cow<'a, str>,
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(borrow, default)]
    user_agent: Option<Cow<'a, str>>,
}

/// Unix seconds with a fraction; an f64 holds present-day times to a fraction of a microsecond.
fn ts_to_ms(ts: f64) -> Option<i64> {
    if !ts.is_finite() || !(-1e13..=1e13).contains(&ts) {
        return None;
    }
    Some((ts * 1000.0).round() as i64)
}

pub(crate) fn parse_json(line: &[u8]) -> Option<LogLine> {
    let j: JsonLine<'_> = serde_json::from_slice(line).ok()?;
    let time_ms = match (&j.time, j.ts) {
        (Some(t), _) => parse_rfc3339(t)?,
        (None, Some(ts)) => ts_to_ms(ts)?,
        (None, None) => return None,
    };
    let client: IpAddr = j.client.parse().ok()?;
    Some(LogLine {
        time_ms,
        client,
        method: j.method.map(Cow::into_owned).unwrap_or_default(),
        uri: j.uri.map(Cow::into_owned).unwrap_or_default(),
        status: j.status.unwrap_or(0),
        bytes: j.bytes.unwrap_or(0),
        host: j.host.map(Cow::into_owned),
        user_agent: j.user_agent.map(Cow::into_owned),
    })
}
