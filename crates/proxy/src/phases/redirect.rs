//! `https_redirect`: a plain-HTTP request to a domain that asks for it gets 308 to the same URL on HTTPS.
//! Runs after the protection phases and the limits (a flood over plain HTTP is still challenged, limited and
//! counted) and before the cache and the upstream. 308 rather than 301 keeps the method and body.

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::ctx::{Flow, RequestCtx, answer};

pub(crate) fn https_redirect(ctx: &RequestCtx, req: &Request<Incoming>) -> Flow {
    let Some(domain) = ctx.domain.as_deref() else {
        return Flow::Continue;
    };
    if !domain.https_redirect || ctx.conn.https {
        return Flow::Continue;
    }
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut url = BytesMut::with_capacity(16 + domain.name.len() + path.len());
    url.put_slice(b"https://");
    url.put_slice(domain.name.as_bytes());
    // The first listen_tls port, named unless it is HTTPS's own.
    if let Some(port) = ctx.rt.https_port.filter(|&p| p != 443) {
        url.put_u8(b':');
        crate::ctx::put_decimal(&mut url, u64::from(port));
    }
    url.put_slice(path.as_bytes());
    let Ok(location) = HeaderValue::from_maybe_shared(url.freeze()) else {
        return Flow::Continue;
    };
    let mut resp = answer(
        StatusCode::PERMANENT_REDIRECT,
        "308 Permanent Redirect\nedgeguard: this domain is served over HTTPS\n",
    );
    resp.headers_mut().insert(header::LOCATION, location);
    Flow::Answer(resp)
}
