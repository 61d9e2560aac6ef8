//! `POST /api/v1/domains/{name}/purge`: the body's checks, the answer of a node without a cache (the memory
//! stand-in keeps none), and the OpenAPI document. The purge itself is tested on a running node in
//! crates/proxy/tests/cache_rfc.rs.

mod common;

use common::*;
use serde_json::json;

const PATH: &str = "/api/v1/domains/www.example.com/purge";

#[tokio::test]
async fn bodies_are_checked_and_a_node_without_a_cache_says_so() {
    let h = start().await;
    for body in [
        json!({}),
        json!({"urls": ["/a"], "tags": ["t"]}),
        json!({"urls": "/a"}),
        json!({"prefix": "img/"}),
        json!({"paths": ["/a"]}),
    ] {
        let a = h.send_json("POST", PATH, body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text());
    }
    let a = h.send_json("POST", PATH, json!({"tags": ["t"]})).await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert!(a.text().contains("keeps no cache"), "{}", a.text());
    let none = h
        .send_json(
            "POST",
            "/api/v1/domains/nope.example.com/purge",
            json!({"prefix": "/"}),
        )
        .await;
    assert_eq!(none.status, 404);
    assert_eq!(h.call("GET", PATH, None, b"").await.status, 405);
    let doc = h.get("/api/v1/openapi.json").await.json();
    assert!(doc["paths"]["/api/v1/domains/{name}/purge"]["post"].is_object());
    assert!(doc["components"]["schemas"]["PurgeRequest"].is_object());
}
