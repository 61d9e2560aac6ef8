//! Certificates of `[domain.tls]` and roots of `[domain.upstream_tls] ca`, read the one way both `edgeguard
//! check` and the data plane read them, so a file that passes the check is a file the node can serve.
//!
//! The signing key is made with rustls' ring provider (RSA, ECDSA P-256/P-384, Ed25519). Expiry is read from
//! the end-entity certificate's `notAfter` with a small DER walk rather than a full X.509 parser: the check
//! needs that one field, and the handshake itself is rustls' business.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {why}")]
    Read { path: String, why: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} holds no usable private key: {why}")]
    Key { path: String, why: String },
    #[error("the private key in {key} does not match the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error("the certificate in {path} expired {ago} ago")]
    Expired { path: String, ago: String },
    #[error("the certificate in {path} is not a readable X.509 certificate")]
    BadCertificate { path: String },
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

/// The PEM certificates of `path`, in file order (the chain, end-entity first).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = std::fs::read(path).map_err(|e| CertError::Read {
        path: shown(path),
        why: e.to_string(),
    })?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(CertError::NoCertificate { path: shown(path) });
    }
    Ok(chain)
}

/// The certificate chain of `cert` with the key of `key`, checked: the key is supported, matches the
/// end-entity certificate, and that certificate has not expired at `now`.
pub fn certified_key(
    cert: &Path,
    key: &Path,
    now: SystemTime,
) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = read_chain(cert)?;
    let key_bytes = std::fs::read(key).map_err(|e| CertError::Read {
        path: shown(key),
        why: e.to_string(),
    })?;
    let der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| CertError::Key {
        path: shown(key),
        why: e.to_string(),
    })?;
    let signing = any_supported_type(&der).map_err(|e| CertError::Key {
        path: shown(key),
        why: e.to_string(),
    })?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => {}
        // A key type whose public half the provider cannot show: nothing to compare, the handshake decides.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(CertError::Mismatch {
                cert: shown(cert),
                key: shown(key),
            });
        }
        Err(_) => return Err(CertError::BadCertificate { path: shown(cert) }),
    }
    let not_after =
        not_after(&ck.cert[0]).ok_or_else(|| CertError::BadCertificate { path: shown(cert) })?;
    if let Ok(ago) = now.duration_since(not_after) {
        return Err(CertError::Expired {
            path: shown(cert),
            ago: human(ago),
        });
    }
    Ok(Arc::new(ck))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

/// One DER element: its tag, its contents and what follows it.
fn der(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, r) = rest.split_at(n);
        rest = r;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    Some((tag, content, after))
}

/// The `notAfter` of an X.509 certificate (RFC 5280 4.1: Certificate > tbsCertificate > validity).
pub fn not_after(cert: &[u8]) -> Option<SystemTime> {
    let (_, cert, _) = der(cert)?;
    let (_, tbs, _) = der(cert)?;
    let (mut tag, mut content, mut rest) = der(tbs)?;
    if tag == 0xa0 {
        (tag, content, rest) = der(rest)?; // the explicit version; the serial follows
    }
    let _ = (tag, content);
    let (_, _, rest) = der(rest)?; // signature algorithm
    let (_, _, rest) = der(rest)?; // issuer
    let (_, validity, _) = der(rest)?;
    let (_, _, after_before) = der(validity)?;
    let (tag, time, _) = der(after_before)?;
    let text = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 => (text.get(..4)?.parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let days = days_from_civil(year, month, day);
    let secs = days * 86400 + hour * 3600 + min * 60 + sec;
    Some(match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
    }

    #[test]
    fn not_after_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let t = not_after(cert.der()).unwrap();
        let want = UNIX_EPOCH + Duration::from_secs(days_from_civil(2031, 7, 9) as u64 * 86400);
        assert_eq!(t, want);
    }
}
