//! What a test origin answers for one path, as data: the body (fixed, naming the path, echoing headers, sized
//! from the query, streamed in chunks), its status and headers, a delay, a gate, and whether it counts as a hit.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

/// What an origin answers for one path.
#[derive(Clone, Debug)]
pub struct Route {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Body,
    pub(crate) delay: Delay,
    pub(crate) gated: bool,
    pub(crate) counted: bool,
    pub(crate) conditional: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum Body {
    Fixed(Bytes),
    /// `{prefix}{path}{suffix}`, the path with `?{query}` when `query` is set and the request has one.
    Path {
        prefix: String,
        query: bool,
        suffix: String,
    },
    /// `uri={uri}` then `{label}={values of header, joined by |}`, one a line.
    Echo(Vec<(String, String)>),
    /// Every value of one request header, one a line.
    HeaderLines(String),
    /// `{prefix}{length of the request body}{suffix}`.
    ReceivedLen {
        prefix: String,
        suffix: String,
    },
    /// As many bytes as the query argument `param` says, all `byte`; streamed `chunk` bytes at a time when set.
    Sized {
        param: String,
        byte: u8,
        chunk: Option<usize>,
    },
    /// A body of unknown length sent chunk by chunk, maybe pausing before one of them.
    Chunks {
        chunks: Vec<Bytes>,
        pause: Option<(usize, Pause)>,
    },
}

#[derive(Clone, Debug)]
pub(crate) enum Pause {
    /// Until the test lets it through ([`Origin::open_gate`](crate::Origin::open_gate)).
    Gate,
    /// Forever when the request carries this header (the client gives up first).
    ForeverIf(String),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Delay {
    None,
    Fixed(Duration),
    /// Milliseconds from a query argument, capped so a typo in a test cannot hang it.
    FromQuery {
        param: &'static str,
        max: Duration,
    },
}

impl Route {
    fn with_body(body: Body) -> Self {
        Route {
            status: StatusCode::OK,
            headers: Vec::new(),
            body,
            delay: Delay::None,
            gated: false,
            counted: true,
            conditional: false,
        }
    }

    /// A fixed body.
    pub fn text(body: impl Into<Bytes>) -> Self {
        Self::with_body(Body::Fixed(body.into()))
    }

    /// `{prefix}{path}{suffix}`, e.g. `ok /a\n`.
    pub fn path(prefix: &str, suffix: &str) -> Self {
        Self::with_body(Body::Path {
            prefix: prefix.into(),
            query: false,
            suffix: suffix.into(),
        })
    }

    /// `{prefix}{path}?{query}{suffix}` (without `?` when the request has no query), e.g. `ok /a?b=1\n`.
    pub fn path_and_query(prefix: &str, suffix: &str) -> Self {
        Self::with_body(Body::Path {
            prefix: prefix.into(),
            query: true,
            suffix: suffix.into(),
        })
    }

    /// `uri=<request URI>` and one `label=<values>` line per `(label, header name)`, values joined by `|`.
    pub fn echo(fields: &[(&str, &str)]) -> Self {
        Self::with_body(Body::Echo(
            fields
                .iter()
                .map(|(l, h)| ((*l).to_owned(), (*h).to_owned()))
                .collect(),
        ))
    }

    /// Every value of the request header `name`, one a line.
    pub fn header_lines(name: &str) -> Self {
        Self::with_body(Body::HeaderLines(name.into()))
    }

    /// Reads the whole request body and answers `{prefix}{its length}{suffix}`.
    pub fn received_len(prefix: &str, suffix: &str) -> Self {
        Self::with_body(Body::ReceivedLen {
            prefix: prefix.into(),
            suffix: suffix.into(),
        })
    }

    /// A body of `byte` repeated as many times as the query argument `param` says (0 without it).
    pub fn sized(param: &str, byte: u8) -> Self {
        Self::with_body(Body::Sized {
            param: param.into(),
            byte,
            chunk: None,
        })
    }

    /// Like [`Route::sized`], but of unknown length, sent `chunk` bytes at a time.
    pub fn sized_streamed(param: &str, byte: u8, chunk: usize) -> Self {
        Self::with_body(Body::Sized {
            param: param.into(),
            byte,
            chunk: Some(chunk.max(1)),
        })
    }

    /// A body of unknown length: `chunks` one after the other.
    pub fn chunks<const N: usize>(chunks: [&'static str; N]) -> Self {
        Self::with_body(Body::Chunks {
            chunks: chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
            pause: None,
        })
    }

    /// For [`Route::chunks`]: chunk `index` waits for a permit of the origin's gate.
    pub fn gate_before_chunk(mut self, index: usize) -> Self {
        if let Body::Chunks { pause, .. } = &mut self.body {
            *pause = Some((index, Pause::Gate));
        }
        self
    }

    /// For [`Route::chunks`]: chunk `index` is never sent when the request carries `header`.
    pub fn hold_before_chunk_if(mut self, index: usize, header: &str) -> Self {
        if let Body::Chunks { pause, .. } = &mut self.body {
            *pause = Some((index, Pause::ForeverIf(header.into())));
        }
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).expect("valid status code");
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
            HeaderValue::from_str(value).expect("valid header value"),
        ));
        self
    }

    pub fn cache_control(self, value: &str) -> Self {
        self.header("cache-control", value)
    }

    /// Waits this long before the response head.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Delay::Fixed(d);
        self
    }

    /// Waits as many milliseconds as the query argument `param` says (at most `max`) before the head.
    pub fn delay_from_query(mut self, param: &'static str, max: Duration) -> Self {
        self.delay = Delay::FromQuery { param, max };
        self
    }

    /// Answers only once the test lets a permit of the origin's gate through.
    pub fn gated(mut self) -> Self {
        self.gated = true;
        self
    }

    /// Answers 304 without a body when the request's `If-None-Match` names this route's `ETag` (or is `*`),
    /// or its `If-Modified-Since` is this route's `Last-Modified` verbatim: enough for a cache's revalidation.
    pub fn conditional(mut self) -> Self {
        self.conditional = true;
        self
    }

    pub(crate) fn not_modified(&self, req: &http::HeaderMap) -> bool {
        let own = |name: http::header::HeaderName| {
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        if let Some(inm) = req.get(http::header::IF_NONE_MATCH) {
            let Some(etag) = own(http::header::ETAG) else {
                return false;
            };
            let bare = |t: &[u8]| t.strip_prefix(b"W/").unwrap_or(t).to_vec();
            return inm
                .to_str()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || bare(t.as_bytes()) == bare(etag.as_bytes()));
        }
        match (
            req.get(http::header::IF_MODIFIED_SINCE),
            own(http::header::LAST_MODIFIED),
        ) {
            (Some(ims), Some(lm)) => ims == lm,
            _ => false,
        }
    }

    /// Not counted in [`Origin::hits`](crate::Origin::hits) (e.g. the favicon a browser asks for on its own).
    pub fn uncounted(mut self) -> Self {
        self.counted = false;
        self
    }
}
