//! The cache's disk tier survives `kill -9`: a node killed while its writer is storing objects restarts with
//! its origin gone and serves, for each URL, either the whole object it stored (a HIT, byte for byte) or a 502;
//! never a part of one, never another URL's bytes.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{Node, http};

const OBJECTS: usize = 400;
const SIZE: usize = 96 * 1024;

/// The body of `/obj/<i>`: its number over and over, so any mix of two objects or a cut shows.
fn body_of(i: usize) -> Vec<u8> {
    format!("{i:05}|")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(SIZE)
        .collect()
}

/// `/obj/<i>` answered with [`body_of`] `i`, cacheable for ten minutes.
fn answer(target: &str) -> Vec<u8> {
    let i: usize = target
        .strip_prefix("/obj/")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let body = body_of(i);
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=600\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    resp
}

fn write_config(dir: &Path, origin: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("edgeguard.toml");
    let text = format!(
        "[node]\nname = \"edge-crash\"\nlisten = [\"127.0.0.1:0\"]\ndata_dir = \"{data}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n\n\
         [[domain]]\nname = \"d.test\"\norigins = [\"{origin}\"]\n\n\
         [domain.cache]\nenabled = true\nmax_size = \"64m\"\ndisk_path = \"{disk}\"\ndisk_size = \"256m\"\n",
        data = dir.join("data").display(),
        disk = dir.join("cache").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Object files written so far (temporaries not counted).
fn stored(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "obj") {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn objects_on_disk_are_whole_or_absent_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), common::origin_with(answer));
    let mut node = Node::start(&config);
    let listen = node.listen;
    // Four clients fill objects as fast as they can; the node is killed once some are on disk and more are
    // being written.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for i in (c..OBJECTS).step_by(4) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // The node may die under the request: any outcome is fine here.
                    let _ = std::panic::catch_unwind(|| {
                        http(listen, "GET", &format!("/obj/{i}"), &[], "")
                    });
                }
            })
        })
        .collect();
    let cache = dir.path().join("cache");
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&cache) < OBJECTS / 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    node.child.kill().unwrap(); // SIGKILL
    node.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let on_disk = stored(&cache);
    assert!(on_disk >= OBJECTS / 4, "{on_disk} objects on disk");

    // Restart with the origin gone: whatever is served comes from the disk.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = write_config(dir.path(), dead);
    let node = Node::start(&config);
    let (mut hits, mut missing) = (0, 0);
    for i in 0..OBJECTS {
        let r = http(node.listen, "GET", &format!("/obj/{i}"), &[], "");
        match r.status {
            200 => {
                assert!(r.head.contains("x-cache: hit"), "/obj/{i}: {}", r.head);
                assert!(
                    r.body.as_bytes() == body_of(i).as_slice(),
                    "/obj/{i}: not its whole body"
                );
                hits += 1;
            }
            502 | 503 => missing += 1,
            s => panic!("/obj/{i}: {s}"),
        }
    }
    println!(
        "killed with {on_disk} object files on disk; after the restart {hits} hits, {missing} gone"
    );
    assert!(hits > 0);
    node.stop();
}
