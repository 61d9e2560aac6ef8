//! Request coalescing: one leader per burst of misses, followers released whatever the leader does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use edgeguard_cache::{Cache, CacheStatus, FillGuard, Lookup, NotStored};
use http::Method;
use tokio::sync::{Barrier, mpsc};

const WAIT: Duration = Duration::from_secs(30);

/// Starts `n` tasks that look the same GET up at once, and returns once every one has looked up: the
/// leaders' guards (exactly one is expected) and the tasks, whose output is a follower's body (empty when
/// its wait brought nothing) or `None` for the leader.
async fn burst(cache: &Cache, n: usize) -> (Vec<FillGuard>, tokio::task::JoinSet<Option<Bytes>>) {
    let barrier = Arc::new(Barrier::new(n));
    let (tx, mut rx) = mpsc::channel(n);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (cache, barrier, tx) = (cache.clone(), barrier.clone(), tx.clone());
        tasks.spawn(async move {
            let r = get("/hot");
            let key = key(&cache, &r);
            barrier.wait().await;
            match cache.lookup_or_lead(&key, &r, t0()) {
                Lookup::Lead { fill, .. } => {
                    tx.send(Some(fill)).await.expect("test channel");
                    None
                }
                Lookup::Follow { wait, .. } => {
                    tx.send(None).await.expect("test channel");
                    let got = wait.wait(&r, WAIT).await;
                    Some(
                        got.map(|c| c.into_response(CacheStatus::Hit).into_body())
                            .unwrap_or_default(),
                    )
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }
    let mut leaders = Vec::new();
    for _ in 0..n {
        if let Some(guard) = rx.recv().await.expect("every task reports its lookup") {
            leaders.push(guard);
        }
    }
    (leaders, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_misses_make_one_upstream_request() {
    let c = cache();
    let (mut leaders, mut followers) = burst(&c, 100).await;
    assert_eq!(leaders.len(), 1);
    assert_eq!(c.stats().coalesced, 99);
    leaders
        .remove(0)
        .complete(
            &res(200, &[("cache-control", "max-age=60")]),
            Bytes::from_static(b"hot body"),
            t0(),
        )
        .unwrap();
    let mut bodies = 0;
    while let Some(result) = followers.join_next().await {
        if let Some(body) = result.expect("task") {
            assert_eq!(&body[..], b"hot body");
            bodies += 1;
        }
    }
    assert_eq!(bodies, 99);
    let s = c.stats();
    assert_eq!((s.misses, s.hits, s.stored), (1, 99, 1));
    // The flight is over: the next lookup is a plain hit.
    assert_eq!(probe(&c, &get("/hot"), t0()), ("hit", false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_guard_releases_every_follower() {
    let c = cache();
    let (leaders, mut followers) = burst(&c, 100).await;
    assert_eq!(leaders.len(), 1);
    drop(leaders);
    let mut released = 0;
    while let Some(result) = followers.join_next().await {
        if let Some(body) = result.expect("task") {
            assert!(body.is_empty(), "a follower got a body from a failed fill");
            released += 1;
        }
    }
    assert_eq!(released, 99);
    assert_eq!(c.stats().passes, 99);
    // Nobody is filling any more: the next lookup leads.
    assert_eq!(probe(&c, &get("/hot"), t0()), ("lead", false));
}

#[tokio::test]
async fn an_unshareable_response_is_not_handed_to_followers() {
    let c = cache();
    let r = get("/me");
    let key = key(&c, &r);
    let Lookup::Lead { fill, .. } = c.lookup_or_lead(&key, &r, t0()) else {
        panic!("lead")
    };
    let Lookup::Follow { wait, .. } = c.lookup_or_lead(&key, &r, t0()) else {
        panic!("follow")
    };
    let private = res(200, &[("cache-control", "private, max-age=60")]);
    assert_eq!(
        fill.complete(&private, Bytes::from_static(b"mine"), t0()),
        Err(NotStored::Policy)
    );
    assert!(wait.wait(&r, WAIT).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_follower_stops_waiting_after_its_timeout() {
    let c = cache();
    let r = get("/slow");
    let key = key(&c, &r);
    let Lookup::Lead { fill: _fill, .. } = c.lookup_or_lead(&key, &r, t0()) else {
        panic!("lead")
    };
    let Lookup::Follow { wait, .. } = c.lookup_or_lead(&key, &r, t0()) else {
        panic!("follow")
    };
    // Paused clock: the runtime advances time itself once every task is idle.
    let started = tokio::time::Instant::now();
    assert!(wait.wait(&r, Duration::from_secs(5)).await.is_none());
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test]
async fn followers_check_vary_and_head_gets_no_body() {
    let c = cache();
    let gz = req(Method::GET, "/v", &[("accept-encoding", "gzip")]);
    let br = req(Method::GET, "/v", &[("accept-encoding", "br")]);
    let head = req(Method::HEAD, "/v", &[("accept-encoding", "gzip")]);
    let key = key(&c, &gz);
    let Lookup::Lead { fill, .. } = c.lookup_or_lead(&key, &gz, t0()) else {
        panic!("lead")
    };
    let Lookup::Follow { wait: other, .. } = c.lookup_or_lead(&key, &br, t0()) else {
        panic!("follow")
    };
    let Lookup::Follow {
        wait: head_wait, ..
    } = c.lookup_or_lead(&key, &head, t0())
    else {
        panic!("HEAD follows a GET fill")
    };
    let h = res(
        200,
        &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
    );
    fill.complete(&h, Bytes::from_static(b"gzipped"), t0())
        .unwrap();
    assert!(other.wait(&br, WAIT).await.is_none());
    let head_resp = head_wait.wait(&head, WAIT).await.expect("matching variant");
    let head_resp = head_resp.into_response(CacheStatus::Hit);
    assert!(head_resp.body().is_empty());
    assert_eq!(head_resp.headers()["content-length"], "7");
}

#[tokio::test]
async fn a_stale_refresh_is_coalesced_too() {
    let c = cache();
    let r = get("/s");
    fill(
        &c,
        &r,
        &res(200, &[("cache-control", "max-age=10")]),
        b"old",
        t0(),
    )
    .unwrap();
    let key = key(&c, &r);
    let Lookup::Lead {
        fill,
        stale: Some(_),
    } = c.lookup_or_lead(&key, &r, at(15))
    else {
        panic!("lead with stale")
    };
    let Lookup::Follow {
        wait,
        stale: Some(stale),
    } = c.lookup_or_lead(&key, &r, at(15))
    else {
        panic!("follow with stale")
    };
    assert_eq!(&stale.body()[..], b"old");
    fill.complete(
        &res(200, &[("cache-control", "max-age=10")]),
        Bytes::from_static(b"new"),
        at(15),
    )
    .unwrap();
    let fresh = wait.wait(&r, WAIT).await.expect("refreshed");
    assert_eq!(&fresh.body()[..], b"new");
    assert_eq!(fresh.age(), Duration::ZERO);
}

/// The proxy holds these across `.await`s inside a multi-threaded hyper service.
#[test]
fn handles_and_the_wait_future_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Cache>();
    send_sync::<Lookup>();
    send_sync::<FillGuard>();
    let c = cache();
    let r = get("/x");
    let key = key(&c, &r);
    let _lead = c.lookup_or_lead(&key, &r, t0());
    let Lookup::Follow { wait, .. } = c.lookup_or_lead(&key, &r, t0()) else {
        panic!("follow")
    };
    send(&wait.wait(&r, WAIT));
}

#[test]
fn a_head_on_a_stale_object_passes_with_the_stale_copy() {
    let c = cache();
    fill(
        &c,
        &get("/h"),
        &res(200, &[("cache-control", "max-age=10")]),
        b"old",
        t0(),
    )
    .unwrap();
    assert_eq!(
        probe(&c, &req(Method::HEAD, "/h", &[]), at(11)),
        ("pass", true)
    );
}
