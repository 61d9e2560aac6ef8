//! `/api/v1/domains/{name}/challenge` (settings through the configuration) and `.../challenge/start` (timed
//! challenges listed and lifted with the blocks), against the memory stand-in.

mod common;

use common::*;
use edgeguard_admin::Control;
use edgeguard_store::ActivityQuery;
use serde_json::{Value, json};

const PATH: &str = "/api/v1/domains/www.example.com/challenge";

fn fields(a: &Answer) -> Vec<String> {
    a.json()["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn settings_read_and_edit_through_the_configuration() {
    let h = start().await;
    let got = h.get(PATH).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        got.json(),
        json!({"enabled": false, "difficulty": 20, "clearance_ttl": "1h", "paths": [], "timed": []})
    );
    let set = h
        .send_json(
            "PUT",
            PATH,
            json!({"enabled": true, "difficulty": 12, "clearance_ttl": "10m", "paths": ["/login"], "timed": []}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["difficulty"], 12);
    assert_eq!(set.json()["clearance_ttl"], "10m");
    let ch = &h.control.config().domains[0].challenge;
    assert!(ch.enabled);
    assert_eq!(ch.difficulty, 12);
    assert_eq!(ch.clearance_ttl, std::time::Duration::from_secs(600));
    assert_eq!(ch.paths, ["/login"]);
    // The domain's JSON carries the same table.
    let d = h.get("/api/v1/domains/www.example.com").await.json();
    assert_eq!(d["challenge"]["paths"], json!(["/login"]));

    // Every bad field at once, named relative to the challenge.
    let bad = h
        .send_json(
            "PUT",
            PATH,
            json!({"difficulty": 33, "clearance_ttl": "5s", "paths": ["login"], "enable": true}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let f = fields(&bad);
    for want in ["difficulty", "clearance_ttl", "paths[0]", "enable"] {
        assert!(f.iter().any(|x| x == want), "{want} not in {f:?}");
    }
    assert_eq!(h.control.config().domains[0].challenge.difficulty, 12);
    // null returns a member to its default.
    let back = h
        .send_json("PUT", PATH, json!({"difficulty": null, "enabled": false}))
        .await;
    assert_eq!(back.json()["difficulty"], 20);
    assert_eq!(back.json()["enabled"], false);
    assert_eq!(
        h.get("/api/v1/domains/nope.example.com/challenge")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_timed_challenge_is_started_listed_logged_and_lifted() {
    let h = start().await;
    let now = 1_700_000_000_000_i64;
    h.control.set_now_ms(now);
    let start = h
        .send_json("POST", &format!("{PATH}/start"), json!({"ttl": 600}))
        .await;
    assert_eq!(start.status, 201, "{}", start.text());
    let info = start.json();
    assert_eq!(info["object_type"], "domain");
    assert_eq!(info["object_value"], "www.example.com");
    assert_eq!(info["rule"], "admin-api");
    assert_eq!(info["action"], "bot_detection");
    assert_eq!(info["until_ms"], now + 600_000);
    let id = info["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        start.header("location"),
        Some(format!("/api/v1/blocks/{id}").as_str())
    );
    let prefix = h
        .send_json(
            "POST",
            "/api/v1/domains/WWW.example.com/challenge/start",
            json!({"ttl": 60, "path": "/shop"}),
        )
        .await;
    assert_eq!(prefix.status, 201, "{}", prefix.text());
    assert_eq!(prefix.json()["object_type"], "prefix:/shop");

    let blocks = h.get("/api/v1/blocks").await.json();
    assert_eq!(blocks["blocks"].as_array().map(Vec::len), Some(2));
    let timed = h.get(PATH).await.json()["timed"].clone();
    assert_eq!(timed.as_array().map(Vec::len), Some(2));
    let log = h
        .control
        .activity_log()
        .query(&ActivityQuery::default())
        .expect("query");
    let started: Vec<(&str, &str, u32)> = log
        .records
        .iter()
        .map(|r| {
            (
                r.record.rule.as_str(),
                r.record.object_type.as_str(),
                r.record.ttl_s,
            )
        })
        .collect();
    assert!(
        started.contains(&("admin-api", "domain", 600)),
        "{started:?}"
    );
    assert!(
        started.contains(&("admin-api", "prefix:/shop", 60)),
        "{started:?}"
    );

    let lifted = h
        .call("DELETE", &format!("/api/v1/blocks/{id}"), None, b"")
        .await;
    assert_eq!(lifted.status, 204);
    let left = h.get("/api/v1/blocks").await.json();
    assert_eq!(left["blocks"][0]["object_type"], "prefix:/shop");
}

#[tokio::test]
async fn bad_starts_are_refused_with_the_field() {
    let h = start().await;
    let url = format!("{PATH}/start");
    for (body, field) in [
        (json!({}), "ttl"),
        (json!({"ttl": 0}), "ttl"),
        (json!({"ttl": 2_592_001}), "ttl"),
        (json!({"ttl": "600"}), "ttl"),
        (json!({"ttl": 60, "path": "shop"}), "path"),
        (json!({"ttl": 60, "path": "/a?b"}), "path"),
        (json!({"ttl": 60, "path": 5}), "path"),
        (json!({"ttl": 60, "until": 5}), "until"),
    ] {
        let a = h.send_json("POST", &url, body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text());
        assert!(
            fields(&a).iter().any(|f| f == field),
            "{body}: {}",
            a.text()
        );
    }
    let none = h
        .send_json(
            "POST",
            "/api/v1/domains/nope.example.com/challenge/start",
            json!({"ttl": 60}),
        )
        .await;
    assert_eq!(none.status, 404);
    assert_eq!(h.call("GET", &url, None, b"").await.status, 405);
    assert_eq!(
        h.get("/api/v1/blocks").await.json()["blocks"],
        Value::Array(vec![])
    );
}

#[tokio::test]
async fn openapi_has_the_challenge_paths() {
    let h = start().await;
    let doc = h.get("/api/v1/openapi.json").await.json();
    let paths = &doc["paths"];
    assert!(paths["/api/v1/domains/{name}/challenge"]["get"].is_object());
    assert!(paths["/api/v1/domains/{name}/challenge"]["put"].is_object());
    assert!(paths["/api/v1/domains/{name}/challenge/start"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ChallengeDoc"].is_object());
    assert!(doc["components"]["schemas"]["StartChallenge"].is_object());
}
