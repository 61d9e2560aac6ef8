//! The disk tier: objects survive a restart (a new `Cache` over the same folder), within the byte budget,
//! per variant, purged with the memory copy; damaged files are dropped, never served.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use edgeguard_cache::{Cache, CacheConfig, CacheStatus, DiskConfig, Lookup};
use http::Method;

fn now() -> SystemTime {
    // Files past being kept are deleted when a tier opens, judged by the real clock: tests use it too (in
    // whole seconds, as files keep times to the millisecond).
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn disk_cache(dir: &Path, size: u64) -> Cache {
    let c = Cache::new(CacheConfig {
        disk: Some(DiskConfig {
            path: dir.to_path_buf(),
            size,
        }),
        ..config()
    });
    assert_eq!(c.disk_error(), None);
    c
}

fn store(c: &Cache, r: &http::request::Parts, headers: &[(&str, &str)], body: &str, t: SystemTime) {
    let Lookup::Lead { fill, .. } = c.lookup_or_lead(&key(c, r), r, t) else {
        panic!("expected to lead")
    };
    fill.complete(&res(200, headers), Bytes::from(body.to_owned()), t)
        .expect("stored");
}

async fn lookup(c: &Cache, r: &http::request::Parts, t: SystemTime) -> Lookup {
    c.lookup(&key(c, r), r, t).await
}

async fn body_of(c: &Cache, r: &http::request::Parts, t: SystemTime) -> Option<String> {
    match lookup(c, r, t).await {
        Lookup::Hit(hit) => Some(String::from_utf8_lossy(hit.body()).into_owned()),
        _ => None,
    }
}

fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            for f in std::fs::read_dir(&sub).unwrap() {
                let f = f.unwrap();
                out.push((f.path().display().to_string(), f.metadata().unwrap().len()));
            }
        }
    }
    out
}

const CC: [(&str, &str); 2] = [("cache-control", "max-age=600"), ("etag", "\"v1\"")];

#[tokio::test]
async fn objects_survive_a_restart_with_their_headers_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    {
        let c = disk_cache(dir.path(), 1 << 20);
        store(&c, &get("/a"), &CC, "hello", t);
        c.flush_disk();
        assert_eq!(c.disk_stats().unwrap().objects, 1);
    }
    let c = disk_cache(dir.path(), 1 << 20);
    assert_eq!(c.stats().objects, 0, "memory starts empty");
    let later = t + Duration::from_secs(30);
    let Lookup::Hit(hit) = lookup(&c, &get("/a"), later).await else {
        panic!("expected a hit from disk")
    };
    assert_eq!(hit.body(), &Bytes::from_static(b"hello"));
    assert_eq!(hit.headers()["etag"], "\"v1\"");
    assert_eq!(hit.age(), Duration::from_secs(30));
    let response = hit.into_response(CacheStatus::Hit);
    assert_eq!(response.headers()["age"], "30");
    // Promoted into memory: the next lookup needs no disk.
    assert_eq!(c.stats().objects, 1);
    assert!(matches!(
        c.lookup_or_lead(&key(&c, &get("/a")), &get("/a"), later),
        Lookup::Hit(_)
    ));
    assert_eq!(c.disk_stats().unwrap().hits, 1);
}

#[tokio::test]
async fn an_expired_object_from_disk_is_revalidated_and_kept_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    {
        let c = disk_cache(dir.path(), 1 << 20);
        store(
            &c,
            &get("/a"),
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "old",
            t,
        );
        c.flush_disk();
    }
    let c = disk_cache(dir.path(), 1 << 20);
    match lookup(&c, &get("/a"), t + Duration::from_secs(5)).await {
        Lookup::Lead { fill, stale } => {
            assert!(fill.is_revalidation());
            let mut headers = http::HeaderMap::new();
            fill.add_validators(&mut headers);
            assert_eq!(headers["if-none-match"], "\"v1\"");
            assert_eq!(
                stale.expect("stale copy").body(),
                &Bytes::from_static(b"old")
            );
        }
        other => panic!("expected a revalidating lead, got {other:?}"),
    }
}

#[tokio::test]
async fn each_variant_has_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let gz = req(Method::GET, "/v", &[("accept-encoding", "gzip")]);
    let br = req(Method::GET, "/v", &[("accept-encoding", "br")]);
    let h = [
        ("cache-control", "max-age=600"),
        ("vary", "accept-encoding"),
    ];
    {
        let c = disk_cache(dir.path(), 1 << 20);
        store(&c, &gz, &h, "gz", t);
        store(&c, &br, &h, "br", t);
        c.flush_disk();
    }
    assert_eq!(files(dir.path()).len(), 2);
    let c = disk_cache(dir.path(), 1 << 20);
    assert_eq!(body_of(&c, &br, t).await.as_deref(), Some("br"));
    assert_eq!(body_of(&c, &gz, t).await.as_deref(), Some("gz"));
    let other = req(Method::GET, "/v", &[("accept-encoding", "zstd")]);
    assert_eq!(body_of(&c, &other, t).await, None);
}

#[tokio::test]
async fn files_stay_within_the_budget_newest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let budget = 24 * 1024;
    let c = disk_cache(dir.path(), budget);
    let body = "x".repeat(4000);
    for i in 0..20 {
        store(
            &c,
            &get(&format!("/{i}")),
            &CC,
            &body,
            t + Duration::from_secs(i),
        );
    }
    c.flush_disk();
    let on_disk: u64 = files(dir.path()).iter().map(|(_, len)| len).sum();
    assert!(
        on_disk <= budget,
        "{on_disk} bytes on disk over a {budget} budget"
    );
    assert_eq!(c.disk_stats().unwrap().bytes, on_disk);
    drop(c);
    // A smaller budget at the next start evicts down to it.
    let c = disk_cache(dir.path(), budget / 2);
    let on_disk: u64 = files(dir.path()).iter().map(|(_, len)| len).sum();
    assert!(on_disk <= budget / 2);
    assert_eq!(
        body_of(&c, &get("/19"), t).await.as_deref(),
        Some(body.as_str())
    );
    assert_eq!(body_of(&c, &get("/0"), t).await, None);
}

#[tokio::test]
async fn purges_reach_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    let tagged = [("cache-control", "max-age=600"), ("cache-tag", "red")];
    {
        let c = disk_cache(dir.path(), 1 << 20);
        store(&c, &get("/keep"), &CC, "k", t);
        store(&c, &get("/url"), &CC, "u", t);
        store(&c, &get("/img/1"), &CC, "i", t);
        store(&c, &get("/tag"), &tagged, "t", t);
        c.purge_keys(&[key(&c, &get("/url"))]);
        c.purge_prefix("example.com/img/");
        c.purge_tags(&["red"]);
        c.flush_disk();
        assert_eq!(c.disk_stats().unwrap().objects, 1);
    }
    assert_eq!(files(dir.path()).len(), 1);
    let c = disk_cache(dir.path(), 1 << 20);
    assert_eq!(body_of(&c, &get("/keep"), t).await.as_deref(), Some("k"));
    for gone in ["/url", "/img/1", "/tag"] {
        assert_eq!(body_of(&c, &get(gone), t).await, None, "{gone}");
    }
    c.clear();
    c.flush_disk();
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn damaged_files_are_dropped_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    {
        let c = disk_cache(dir.path(), 1 << 20);
        store(&c, &get("/a"), &CC, "hello world", t);
        store(&c, &get("/b"), &CC, "fine", t);
        store(&c, &get("/c"), &CC, "flipped bit", t);
        c.flush_disk();
    }
    let holding = |needle: &[u8]| {
        files(dir.path())
            .into_iter()
            .find(|(p, _)| {
                std::fs::read(p)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            })
            .unwrap()
    };
    // Truncate one file by a byte, change one byte of another's body in place (same length: only the
    // checksum tells), and leave a stray temporary behind as a crash would.
    let (victim, len) = holding(b"hello world");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..len as usize - 1]).unwrap();
    let (flipped, _) = holding(b"flipped bit");
    let mut bytes = std::fs::read(&flipped).unwrap();
    let at = bytes.windows(11).position(|w| w == b"flipped bit").unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&flipped, &bytes).unwrap();
    let stray = Path::new(&victim).with_extension("tmp");
    std::fs::write(&stray, b"partial").unwrap();
    let c = disk_cache(dir.path(), 1 << 20);
    assert!(!stray.exists());
    assert_eq!(body_of(&c, &get("/a"), t).await, None);
    assert_eq!(body_of(&c, &get("/c"), t).await, None);
    assert!(
        !Path::new(&flipped).exists(),
        "a file that fails its checksum is deleted"
    );
    assert_eq!(body_of(&c, &get("/b"), t).await.as_deref(), Some("fine"));
}

#[test]
fn an_unusable_folder_is_reported_and_the_cache_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let c = Cache::new(CacheConfig {
        disk: Some(DiskConfig {
            path: file.join("cache"),
            size: 1 << 20,
        }),
        ..config()
    });
    assert!(c.disk_error().is_some());
    store(&c, &get("/a"), &CC, "m", now());
    assert!(matches!(probe(&c, &get("/a"), now()), ("hit", false)));
}
