//! A request as the handlers see it (head and whole body, already authorized) and the answer they build.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, json_syntax};

pub struct Req {
    pub method: Method,
    /// The query string, undecoded.
    pub query: Option<String>,
    pub body: Bytes,
}

impl Req {
    /// The body as a JSON value; malformed JSON is a 400 naming the line and column.
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| json_syntax(&e))
    }

    /// The body as a JSON object.
    pub fn json_object(&self) -> Result<serde_json::Map<String, Value>, ApiError> {
        match self.json()? {
            Value::Object(m) => Ok(m),
            other => Err(ApiError::bad_request(format!(
                "the request body must be a JSON object; found {}",
                kind(&other)
            ))),
        }
    }

    /// Decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode_query(k), decode_query(v))
            })
            .collect()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Percent-decoding of one path segment; `None` when the escapes do not form UTF-8 (or are malformed).
pub fn decode_segment(s: &str) -> Option<String> {
    percent_decode(s.as_bytes(), false)
}

fn decode_query(s: &str) -> String {
    percent_decode(s.as_bytes(), true).unwrap_or_else(|| s.to_owned())
}

fn percent_decode(s: &[u8], plus_is_space: bool) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An answer before it becomes a hyper response.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

pub const JSON: &str = "application/json";

impl Reply {
    pub fn json(status: StatusCode, value: &impl Serialize) -> Reply {
        match serde_json::to_vec_pretty(value) {
            Ok(body) => Reply::bytes(status, JSON, body),
            Err(e) => Reply::error(&ApiError::internal(format!("cannot write JSON: {e}"))),
        }
    }

    pub fn ok(value: &impl Serialize) -> Reply {
        Reply::json(StatusCode::OK, value)
    }

    pub fn no_content() -> Reply {
        Reply::bytes(StatusCode::NO_CONTENT, JSON, Vec::new())
    }

    pub fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn error(e: &ApiError) -> Reply {
        Reply::json(e.status, &e.body())
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

impl From<Result<Reply, ApiError>> for Reply {
    fn from(r: Result<Reply, ApiError>) -> Reply {
        r.unwrap_or_else(|e| Reply::error(&e))
    }
}
