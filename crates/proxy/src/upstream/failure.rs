//! How an upstream failed, and the list of every upstream a request tried: the status it decides and the body
//! that names each upstream and its failure.

use std::fmt::Write as _;
use std::sync::Arc;

use http::StatusCode;

use super::UpstreamPool;

/// How one upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Resolve,
    Refused,
    ConnectTimeout,
    ConnectError,
    Reset,
    ReadTimeout,
    BadResponse,
    /// The client's body broke the exchange: these are answered as client errors.
    BodyTooLarge,
    BodyTimeout,
    ClientGone,
    /// Not tried: marked down by health checks or by `max_fails` failures (the body names the failure that put
    /// it there).
    MarkedDown,
    /// `max_conns` connections open and the queue full: not tried.
    QueueFull,
    /// `max_conns` connections open and none came free within `queue_timeout`.
    QueueTimeout,
    /// An HTTP health check got a status outside `health_check.statuses`.
    ProbeStatus,
    /// `[domain.upstream_tls]`: the upstream's certificate did not verify, by why; or the handshake failed.
    CertUnknownIssuer,
    CertWrongName,
    CertInvalid,
    TlsHandshake,
}

/// Every `Failure`, so one fits in an `AtomicU8` as its index.
const FAILURES: [Failure; 18] = [
    Failure::Resolve,
    Failure::Refused,
    Failure::ConnectTimeout,
    Failure::ConnectError,
    Failure::Reset,
    Failure::ReadTimeout,
    Failure::BadResponse,
    Failure::BodyTooLarge,
    Failure::BodyTimeout,
    Failure::ClientGone,
    Failure::MarkedDown,
    Failure::CertUnknownIssuer,
    Failure::CertWrongName,
    Failure::CertInvalid,
    Failure::TlsHandshake,
    Failure::QueueFull,
    Failure::QueueTimeout,
    Failure::ProbeStatus,
];

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Failure::ConnectTimeout | Failure::ReadTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Failure::ClientGone => StatusCode::BAD_REQUEST,
            Failure::MarkedDown | Failure::QueueFull | Failure::QueueTimeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    pub(crate) fn is_client_side(self) -> bool {
        matches!(
            self,
            Failure::BodyTooLarge | Failure::BodyTimeout | Failure::ClientGone
        )
    }

    /// Whether this failure says the upstream cannot be reached at all (it is marked down for it).
    pub(crate) fn is_connect(self) -> bool {
        matches!(
            self,
            Failure::Resolve | Failure::Refused | Failure::ConnectTimeout | Failure::ConnectError
        )
    }

    pub(crate) fn index(self) -> u8 {
        FAILURES.iter().position(|&f| f == self).unwrap_or(3) as u8
    }

    pub(crate) fn from_index(i: u8) -> Failure {
        FAILURES
            .get(usize::from(i))
            .copied()
            .unwrap_or(Failure::ConnectError)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Failure::Resolve => "name could not be resolved",
            Failure::Refused => "refused the connection",
            Failure::ConnectTimeout => "did not accept the connection within connect_timeout",
            Failure::ConnectError => "could not be connected to",
            Failure::Reset => "closed or reset the connection",
            Failure::ReadTimeout => "sent no response within read_timeout",
            Failure::BadResponse => "sent an invalid response",
            Failure::BodyTooLarge => "was not sent the request: body larger than max_body_size",
            Failure::BodyTimeout => "was not sent the request: client body timed out",
            Failure::ClientGone => "was not sent the request: client body broken",
            Failure::MarkedDown => "is marked down",
            Failure::CertUnknownIssuer => {
                "upstream certificate not trusted: its issuer is not among the roots of upstream_tls.ca \
                 (or the system's)"
            }
            Failure::CertWrongName => {
                "upstream certificate not trusted: not valid for the verified name (upstream_tls.server_name, \
                 default the domain name)"
            }
            Failure::CertInvalid => {
                "upstream certificate not trusted: expired, not yet valid or otherwise invalid"
            }
            Failure::TlsHandshake => "failed the TLS handshake",
            Failure::QueueFull => "has max_conns connections in use and a full queue",
            Failure::QueueTimeout => "had no free connection within queue_timeout (max_conns)",
            Failure::ProbeStatus => {
                "answered the health check with a status outside health_check.statuses"
            }
        }
    }
}

/// Every upstream tried for a request, with how each failed; the last decides the status.
#[derive(Debug, Default)]
pub(crate) struct Failures(pub(crate) Vec<(Arc<UpstreamPool>, Failure)>);

impl Failures {
    /// The last upstream actually tried decides; 503 when none was (every one marked down).
    pub(crate) fn status(&self) -> StatusCode {
        match self.last_tried() {
            Some(f) => f.status(),
            None if self.0.is_empty() => StatusCode::BAD_GATEWAY,
            None => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The failure of the last upstream tried (not skipped as down).
    pub(crate) fn last_tried(&self) -> Option<Failure> {
        self.0
            .iter()
            .rev()
            .map(|(_, f)| *f)
            .find(|&f| f != Failure::MarkedDown)
    }

    /// Whether every upstream was skipped as down (the 503 case).
    pub(crate) fn all_down(&self) -> bool {
        !self.0.is_empty() && self.last_tried().is_none()
    }

    /// The error body: one line per upstream tried.
    pub(crate) fn body(&self) -> String {
        let status = self.status();
        let mut out = format!(
            "{} {}\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        );
        if self.0.is_empty() {
            out.push_str("edgeguard: this domain has no upstream configured\n");
        } else if self.all_down() {
            out.push_str("edgeguard: every upstream of this domain is marked down\n");
        }
        for (pool, failure) in &self.0 {
            if *failure == Failure::MarkedDown {
                let _ = writeln!(
                    out,
                    "edgeguard: {} {} (last failure: {})",
                    pool.label,
                    failure.describe(),
                    pool.health.cause().describe()
                );
            } else {
                let _ = writeln!(out, "edgeguard: {} {}", pool.label, failure.describe());
            }
        }
        out
    }
}
