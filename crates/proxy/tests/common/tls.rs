//! A throwaway certificate authority for the TLS tests: rcgen-made, written as PEM files the node loads.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;

/// A test CA that issues server certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// Writes `<stem>.pem` and `<stem>.key` for `name` into `dir`; returns the certificate's DER.
    pub fn issue(&self, dir: &Path, stem: &str, name: &str) -> Vec<u8> {
        self.issue_with_key(dir, stem, name).0
    }

    /// As [`Ca::issue`], also returning the base64 SHA-256 of the certificate's public key (what Chromium's
    /// `--ignore-certificate-errors-spki-list` trusts).
    pub fn issue_with_key(&self, dir: &Path, stem: &str, name: &str) -> (Vec<u8>, String) {
        use base64::Engine;
        use sha2::Digest;
        let key = KeyPair::generate().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let pem = key.public_key_pem();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let spki = b64.encode(sha2::Sha256::digest(b64.decode(body).unwrap()));
        let p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
        (cert.der().to_vec(), spki)
    }
}
