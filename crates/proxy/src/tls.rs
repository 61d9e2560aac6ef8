//! TLS: the certificates of `[domain.tls]` chosen by SNI for the `listen_tls` listeners, and the client side
//! of `[domain.upstream_tls]`.
//!
//! The server's certificate map sits behind an `ArcSwap` inside the resolver, so a reload swaps certificates
//! for new handshakes while open connections keep the keys they negotiated with. One `ServerConfig` lives for
//! the node's life, so rustls' session cache and ticketer keep resuming sessions across reloads.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use edgeguard_config::{Config, UpstreamTlsSpec};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::ServerName;

use crate::error::ProxyError;

/// Certificates by lower-case host name.
pub(crate) type CertMap = HashMap<String, Arc<CertifiedKey>>;

/// Reads every domain's `[domain.tls]`; any that cannot be served fails the whole set.
pub(crate) fn load_certs(config: &Config) -> Result<CertMap, ProxyError> {
    let now = SystemTime::now();
    let mut map = CertMap::new();
    for d in &config.domains {
        let Some(spec) = &d.tls else { continue };
        let ck = edgeguard_config::certs::certified_key(&spec.cert, &spec.key, now).map_err(
            |source| ProxyError::Certificate {
                domain: d.name.clone(),
                source,
            },
        )?;
        map.insert(d.name.to_ascii_lowercase(), ck);
    }
    Ok(map)
}

/// Picks the certificate by SNI. No SNI, or a name without a certificate: no certificate, and rustls ends
/// the handshake with a fatal alert (the connection is closed, the node goes on serving).
pub(crate) struct SniResolver {
    pub(crate) certs: ArcSwap<CertMap>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("names", &self.certs.load().len())
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        // rustls hands SNI over lower-cased already (it is a DNS name by then).
        let found = self.certs.load().get(name).cloned();
        if found.is_none() {
            tracing::debug!(sni = name, "TLS handshake for a name without a certificate");
        }
        found
    }
}

/// The one server configuration of the node: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, rustls' default
/// in-memory session cache and a ticketer for resumption.
pub(crate) fn server_config(resolver: Arc<SniResolver>) -> Result<Arc<ServerConfig>, ProxyError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| ProxyError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// The client side of one upstream's TLS: the connector and the name sent as SNI and verified.
#[derive(Clone)]
pub(crate) struct UpstreamTls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) server_name: ServerName<'static>,
    /// The settings it was built from, so pools are kept across reloads only while they are unchanged.
    pub(crate) spec: UpstreamTlsSpec,
}

impl UpstreamTls {
    /// `spec` for a domain named `domain` (the default verified name); `None` when not enabled.
    pub(crate) fn build(spec: &UpstreamTlsSpec, domain: &str) -> Result<Option<Self>, ProxyError> {
        if !spec.enabled {
            return Ok(None);
        }
        let bad = |why: String| ProxyError::UpstreamTls {
            domain: domain.to_owned(),
            why,
        };
        let mut roots = RootCertStore::empty();
        match &spec.ca {
            Some(ca) => {
                for c in edgeguard_config::certs::read_chain(ca).map_err(|e| bad(e.to_string()))? {
                    roots
                        .add(c)
                        .map_err(|e| bad(format!("{}: {e}", ca.display())))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    return Err(bad("no system root certificates found; set ca".into()));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The pool speaks HTTP/1.1 to upstreams.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = spec.server_name.as_deref().unwrap_or(domain);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| bad(format!("{name:?} is not a valid TLS server name")))?;
        Ok(Some(UpstreamTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            server_name,
            spec: spec.clone(),
        }))
    }
}
