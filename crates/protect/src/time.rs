//! Times as people read them, for refusal texts and reports.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-11-24T04:30:12Z` for Unix milliseconds (UTC, whole seconds). RFC 3339 has four-digit years, so a time
/// past the year 9999 prints as its last second.
pub fn rfc3339(unix_ms: u64) -> String {
    i64::try_from(unix_ms / 1000)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_owned())
}
