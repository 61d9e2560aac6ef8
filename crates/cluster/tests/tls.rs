//! `rediss://`: nodes join a redis-server that speaks TLS only, with a certificate issued by a CA the test
//! makes and names in `[cluster] redis_ca`; they share a limit through it. A node that does not trust that CA
//! (the system's roots) never connects, and says so.

use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

mod common;

use common::{Redis, config, get_from, join, origin};

/// A CA and a server certificate for 127.0.0.1 it issued, as `ca.pem`, `redis.pem` and `redis.key` in `dir`.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(p, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("redis.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("redis.key"), key.serialize_pem()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_a_limit_through_redis_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let p = certs.path();
    let redis = Redis::start_tls(
        &p.join("redis.pem"),
        &p.join("redis.key"),
        &p.join("ca.pem"),
    );
    assert!(redis.url().starts_with("rediss://"), "{}", redis.url());
    let origin = origin().await;
    let extra = "[domain.ip_access_limit]\nenabled = true\nqps = 10\nscope = \"cluster\"\n";
    let mut nodes = Vec::new();
    for name in ["tls-a", "tls-b"] {
        let dir = tempfile::tempdir().unwrap().keep();
        let mut cfg = config(name, &dir, origin.addr, &redis.url(), 100, extra);
        cfg.cluster.as_mut().unwrap().redis_ca = Some(p.join("ca.pem"));
        // Waits until the node reached Redis: the TLS handshake verified the certificate with the CA.
        nodes.push(join(cfg, true).await);
    }
    // Ten on A within one second; B then has the others' count and refuses at once (514).
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(1000 - ms % 1000 + 5)).await;
    for _ in 0..10 {
        assert_eq!(
            get_from(nodes[0].addr, "198.51.100.70", "/x").await.status,
            200
        );
    }
    let mut status = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = get_from(nodes[1].addr, "198.51.100.70", "/x")
            .await
            .status
            .as_u16();
        if status == 514 {
            break;
        }
    }
    assert_eq!(status, 514, "B never saw A's count over TLS");
    assert!(nodes.iter().all(|n| n.cluster.health().is_up()));

    // Without the CA the system's roots do not know the certificate: the node never connects.
    let dir = tempfile::tempdir().unwrap().keep();
    let cfg = config("tls-c", &dir, origin.addr, &redis.url(), 100, extra);
    let untrusting = join(cfg, false).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let h = untrusting.cluster.health();
    println!("without the CA: {}", h.summary());
    assert!(!h.is_up(), "connected without trusting the CA");
    assert!(h.summary().contains("degraded"), "{}", h.summary());
}
