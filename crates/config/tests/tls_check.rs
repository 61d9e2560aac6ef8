//! `edgeguard check` on `[domain.tls]`: a key that does not match its certificate, and an expired certificate,
//! are refused with the key and line of the setting.

use std::path::Path;

use edgeguard_config::load;

fn write_cert(dir: &Path, name: &str, expired: bool) -> rcgen::KeyPair {
    let mut params = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    key
}

fn config(cert: &str, key: &str) -> String {
    format!(
        "[node]\nname = \"n1\"\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n\n[[domain]]\nname = \"a.test\"\n\
         origins = [\"127.0.0.1:9\"]\n\n[domain.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n"
    )
}

fn error_of(dir: &Path, text: &str, key: &str) -> (usize, String) {
    let file = dir.join("edgeguard.toml");
    std::fs::write(&file, text).unwrap();
    let errors = load(&file).expect_err("refused");
    let e = errors
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for {key}: {errors}"));
    (e.line, e.message.clone())
}

#[test]
fn a_good_pair_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path(), "a", false);
    let file = dir.path().join("edgeguard.toml");
    std::fs::write(&file, config("a.pem", "a.key")).unwrap();
    let c = load(&file).expect("accepted");
    assert_eq!(
        c.domains[0].tls.as_ref().unwrap().cert,
        dir.path().join("a.pem")
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path(), "a", false);
    write_cert(dir.path(), "b", false);
    let (line, message) = error_of(dir.path(), &config("a.pem", "b.key"), "domain[0].tls.key");
    assert_eq!(line, 12);
    assert!(
        message.contains("does not match the certificate"),
        "{message}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path(), "old", true);
    let (line, message) = error_of(
        dir.path(),
        &config("old.pem", "old.key"),
        "domain[0].tls.cert",
    );
    assert_eq!(line, 11);
    assert!(message.contains("expired"), "{message}");
}
