//! The admin API over real HTTP against the in-memory node.

mod common;

use common::{TOKEN, raw, start};
use edgeguard_admin::Control;
use edgeguard_store::{ActivityRecord, BlockRecord};
use serde_json::{Value, json};

#[tokio::test]
async fn auth_none_wrong_right() {
    let h = start().await;
    let none = raw(h.addr, "GET", "/api/v1/domains", None, None, b"").await;
    assert_eq!(none.status, 401);
    assert!(none.messages()[0].contains("missing Authorization"));
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"edgeguard\"")
    );
    let wrong = raw(h.addr, "GET", "/api/v1/domains", Some("nope"), None, b"").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.messages()[0].contains("wrong"));
    let right = raw(h.addr, "GET", "/api/v1/domains", Some(TOKEN), None, b"").await;
    assert_eq!(right.status, 200);
    // Unknown API paths do not tell an unauthenticated client what exists.
    assert_eq!(
        raw(h.addr, "GET", "/api/v1/nothing", None, None, b"")
            .await
            .status,
        401
    );
    // Open: health, console, OpenAPI document. Metrics need the token.
    assert_eq!(
        raw(h.addr, "GET", "/healthz", None, None, b"").await.status,
        200
    );
    assert_eq!(
        raw(h.addr, "GET", "/console/", None, None, b"")
            .await
            .status,
        200
    );
    assert_eq!(
        raw(h.addr, "GET", "/api/v1/openapi.json", None, None, b"")
            .await
            .status,
        200
    );
    assert_eq!(
        raw(h.addr, "GET", "/metrics", None, None, b"").await.status,
        401
    );
    let metrics = h.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("edgeguard_config_applied_total 0"));
    h.admin.stop().await;
}

#[tokio::test]
async fn without_a_token_loopback_clients_are_answered() {
    let h = common::start_with(common::CONFIG, None).await;
    let a = raw(h.addr, "GET", "/api/v1/domains", None, None, b"").await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn domain_crud() {
    let h = start().await;
    let list = h.get("/api/v1/domains").await.json();
    assert_eq!(list["domains"].as_array().map(Vec::len), Some(2));
    assert_eq!(list["domains"][0]["name"], "www.example.com");
    // What the API writes reads back into the documented schema.
    let _: edgeguard_admin::openapi::DomainList =
        serde_json::from_value(list.clone()).expect("domains match the OpenAPI schema");

    let created = h
        .send_json(
            "POST",
            "/api/v1/domains",
            json!({"name": "API.example.com", "origins": ["127.0.0.1:9000"], "cache": {"default_ttl": "10m"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(
        created.header("location"),
        Some("/api/v1/domains/api.example.com")
    );
    let body = created.json();
    assert_eq!(body["name"], "api.example.com");
    assert_eq!(body["cache"]["default_ttl"], "10m");
    assert_eq!(body["limit_req_status"], 503);
    assert_eq!(h.control.applied(), 1);

    let dup = h
        .send_json(
            "POST",
            "/api/v1/domains",
            json!({"name": "api.example.com", "origins": ["127.0.0.1:9000"]}),
        )
        .await;
    assert_eq!(dup.status, 409);

    let got = h.get("/api/v1/domains/api.example.com").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), body);

    let patched = h
        .send_json(
            "PATCH",
            "/api/v1/domains/api.example.com",
            json!({"explain": true, "cache": {"default_ttl": null}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["explain"], true);
    assert_eq!(patched.json()["cache"]["default_ttl"], "5m");

    let put = h
        .send_json(
            "PUT",
            "/api/v1/domains/api.example.com",
            json!({"origins": ["127.0.0.1:9001"]}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["origins"], json!(["127.0.0.1:9001"]));
    assert_eq!(put.json()["explain"], false);

    let rename = h
        .send_json(
            "PUT",
            "/api/v1/domains/api.example.com",
            json!({"name": "other.example.com", "origins": ["127.0.0.1:1"]}),
        )
        .await;
    assert_eq!(rename.status, 400);
    assert_eq!(rename.json()["errors"][0]["field"], "name");

    assert_eq!(
        h.call("DELETE", "/api/v1/domains/api.example.com", None, b"")
            .await
            .status,
        204
    );
    assert_eq!(h.get("/api/v1/domains/api.example.com").await.status, 404);
    assert_eq!(
        h.call("DELETE", "/api/v1/domains/api.example.com", None, b"")
            .await
            .status,
        404
    );
    assert_eq!(h.control.config().domains.len(), 2);
}

#[tokio::test]
async fn domain_validation_reports_every_field() {
    let h = start().await;
    let bad = h
        .send_json(
            "POST",
            "/api/v1/domains",
            json!({
                "name": "bad.example.com",
                "origins": ["nope"],
                "limit_req": [{"zone": "missing"}],
                "cache": {"default_ttl": "soon"},
                "explian": true,
            }),
        )
        .await;
    assert_eq!(bad.status, 400);
    let errors = bad.json()["errors"].as_array().cloned().unwrap_or_default();
    let fields: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
    for f in [
        "origins[0]",
        "limit_req[0].zone",
        "cache.default_ttl",
        "explian",
    ] {
        assert!(fields.contains(&f), "{f} missing from {errors:?}");
    }
    assert!(bad.text().contains("did you mean"), "{}", bad.text());
    assert_eq!(h.control.applied(), 0);
    let missing = h
        .send_json(
            "POST",
            "/api/v1/domains",
            json!({"origins": ["127.0.0.1:1"]}),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["errors"][0]["field"], "name");
}

#[tokio::test]
async fn malformed_json_names_line_and_column() {
    let h = start().await;
    let a = h
        .call(
            "POST",
            "/api/v1/domains",
            Some("application/json"),
            b"{\n  \"name\": \"x.example.com\",\n  \"origins\": [1,]\n}",
        )
        .await;
    assert_eq!(a.status, 400);
    let e = &a.json()["errors"][0];
    assert_eq!(e["line"], 3);
    assert!(e["column"].as_u64().is_some_and(|c| c > 0));
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("malformed JSON")
    );
    let not_object = h
        .call("POST", "/api/v1/domains", Some("application/json"), b"[1]")
        .await;
    assert_eq!(not_object.status, 400);
    assert!(not_object.messages()[0].contains("JSON object"));
}

#[tokio::test]
async fn protocol_errors() {
    let h = start().await;
    assert_eq!(h.get("/api/v1/domains/none.example.com").await.status, 404);
    assert_eq!(h.get("/api/v1/nothing").await.status, 404);
    assert_eq!(h.get("/nothing").await.status, 404);
    let m = h.call("DELETE", "/api/v1/domains", None, b"").await;
    assert_eq!(m.status, 405);
    assert_eq!(m.header("allow"), Some("GET, POST"));
    let ct = h
        .call("POST", "/api/v1/domains", Some("text/plain"), b"{}")
        .await;
    assert_eq!(ct.status, 415);
    let none = h.call("POST", "/api/v1/domains", None, b"{}").await;
    assert_eq!(none.status, 415);
    let big = vec![b' '; 2 * 1024 * 1024];
    let large = h
        .call("POST", "/api/v1/domains", Some("application/json"), &big)
        .await;
    assert_eq!(large.status, 413);
    let empty = h
        .call("POST", "/api/v1/domains", Some("application/json"), b"")
        .await;
    assert_eq!(empty.status, 400);
}

#[tokio::test]
async fn ip_access_limit_with_recommendation() {
    let h = start().await;
    let now = 1_700_000_000_000_i64;
    h.control.set_now_ms(now);
    // One busy IP: 6000 requests in a five-minute point = 20 QPS.
    let ip = "203.0.113.7".parse().expect("ip");
    let start_ms = now - 3_600_000;
    for i in 0..6000 {
        h.control
            .stats()
            .record_request("www.example.com", ip, start_ms + i);
    }
    h.control
        .stats()
        .record_request("www.example.com", ip, start_ms + 400_000);
    let got = h
        .get("/api/v1/domains/www.example.com/ip-access-limit")
        .await
        .json();
    assert_eq!(got["enabled"], false);
    assert_eq!(got["qps"], Value::Null);
    assert_eq!(got["recommended_qps"], 20);
    assert_eq!(got["effective_qps"], 20);

    let on = h
        .send_json(
            "PUT",
            "/api/v1/domains/www.example.com/ip-access-limit",
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(on.json()["enabled"], true);
    assert!(h.control.config().domains[0].ip_access_limit.enabled);
    assert_eq!(h.control.config().domains[0].ip_access_limit.qps, None);

    let set = h
        .send_json(
            "PUT",
            "/api/v1/domains/www.example.com/ip-access-limit",
            json!({"qps": 50, "recommended_qps": 20}),
        )
        .await;
    assert_eq!(set.json()["qps"], 50);
    assert_eq!(set.json()["effective_qps"], 50);
    let bad = h
        .send_json(
            "PUT",
            "/api/v1/domains/www.example.com/ip-access-limit",
            json!({"qps": 0, "enabeld": true}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let fields: Vec<String> = bad.json()["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect();
    assert!(fields.contains(&"qps".to_owned()), "{fields:?}");
    assert!(fields.contains(&"enabeld".to_owned()), "{fields:?}");
    let back = h
        .send_json(
            "PUT",
            "/api/v1/domains/www.example.com/ip-access-limit",
            json!({"qps": null}),
        )
        .await;
    assert_eq!(back.json()["qps"], Value::Null);
    assert_eq!(
        h.get("/api/v1/domains/nope.example.com/ip-access-limit")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn origin_addresses_parents_or_node() {
    let h = start().await;
    let own = h
        .get("/api/v1/domains/www.example.com/origin-addresses")
        .await
        .json();
    assert_eq!(own["via"], "node");
    assert_eq!(own["addresses"], json!(["192.0.2.10"]));
    let parents = h
        .get("/api/v1/domains/shop.example.com/origin-addresses")
        .await
        .json();
    assert_eq!(parents["via"], "parents");
    assert_eq!(parents["addresses"], json!(["10.1.0.1", "10.1.0.2"]));
    assert_eq!(parents["parents"][0]["upstream"], "10.1.0.1:8080");
}

fn record(i: i64, domain: &str, rule: &str, ip: &str) -> ActivityRecord {
    ActivityRecord {
        time_ms: 1_700_000_000_000 + i * 1000,
        node: "edge-1".into(),
        domain: domain.into(),
        rule: rule.into(),
        object_type: "ip".into(),
        object_value: ip.into(),
        action: "block".into(),
        ttl_s: 600,
        detail: format!("count={}", 50 + i),
    }
}

#[tokio::test]
async fn activity_paging_and_filters() {
    let h = start().await;
    let log = h.control.activity_log();
    for i in 0..25 {
        log.record(&record(
            i,
            "www.example.com",
            "register01",
            &format!("198.51.100.{i}"),
        ))
        .expect("insert");
    }
    log.record(&record(30, "shop.example.com", "other01", "198.51.100.1"))
        .expect("insert");
    let page = h
        .get("/api/v1/activity?domain=www.example.com&page=2&page_size=10")
        .await
        .json();
    assert_eq!(page["total"], 25);
    assert_eq!(page["page"], 2);
    let records = page["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 10);
    // Newest first: page 2 starts at the 11th newest (i = 14).
    assert_eq!(records[0]["object_value"], "198.51.100.14");
    assert_eq!(records[0]["detail"], "count=64");
    let _: edgeguard_admin::openapi::ActivityPageDoc =
        serde_json::from_value(page.clone()).expect("activity matches the OpenAPI schema");
    let last = h
        .get("/api/v1/activity?domain=www.example.com&page=3&page_size=10")
        .await
        .json();
    assert_eq!(last["records"].as_array().map(Vec::len), Some(5));
    let by_ip = h.get("/api/v1/activity?object=198.51.100.1").await.json();
    assert_eq!(by_ip["total"], 2);
    let by_rule = h.get("/api/v1/activity?rule=other01").await.json();
    assert_eq!(by_rule["total"], 1);
    let range = h
        .get("/api/v1/activity?from=1700000005000&to=1700000010000")
        .await
        .json();
    assert_eq!(range["total"], 5);
    let bad = h
        .get("/api/v1/activity?page=0&page_size=1000&from=yesterday&colour=red")
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["errors"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn blocks_list_and_lift() {
    let h = start().await;
    let until = 4_102_444_800_000; // 2100
    h.control
        .activity_log()
        .save_block(&BlockRecord {
            domain: "www.example.com".into(),
            object_type: "ip".into(),
            object_value: "198.51.100.9".into(),
            rule: "register01".into(),
            action: "block".into(),
            until_ms: until,
        })
        .expect("save");
    let list = h.get("/api/v1/blocks").await.json();
    let id = list["blocks"][0]["id"].as_str().unwrap_or("").to_owned();
    assert_eq!(list["blocks"][0]["object_value"], "198.51.100.9");
    assert_eq!(
        h.call("DELETE", &format!("/api/v1/blocks/{id}"), None, b"")
            .await
            .status,
        204
    );
    assert_eq!(h.get("/api/v1/blocks").await.json()["blocks"], json!([]));
    assert_eq!(
        h.call("DELETE", &format!("/api/v1/blocks/{id}"), None, b"")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn config_export_and_replace() {
    let h = start().await;
    let got = h.get("/api/v1/config").await;
    assert_eq!(got.status, 200);
    let text = got.text();
    assert!(text.contains("[[domain]]"));
    assert!(!text.contains(TOKEN), "the token is not exported");
    let edited = text.replace(
        "name = \"shop.example.com\"",
        "name = \"store.example.com\"",
    );
    let put = h
        .call(
            "PUT",
            "/api/v1/config",
            Some("application/toml"),
            edited.as_bytes(),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let config = h.control.config();
    assert_eq!(config.domains[1].name, "store.example.com");
    assert_eq!(
        config.admin.token.as_deref(),
        Some(TOKEN),
        "the running token is kept"
    );
    let broken = "[node]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\n\n[[domain]]\nname = \"a.example.com\"\norigins = []\n";
    let bad = h
        .call(
            "PUT",
            "/api/v1/config",
            Some("application/toml"),
            broken.as_bytes(),
        )
        .await;
    assert_eq!(bad.status, 400);
    let e = &bad.json()["errors"][0];
    assert_eq!(e["field"], "domain[0].origins");
    assert_eq!(e["line"], 7);
    let json_body = h
        .call("PUT", "/api/v1/config", Some("application/json"), b"{}")
        .await;
    assert_eq!(json_body.status, 415);
}

#[tokio::test]
async fn refused_apply_is_reported() {
    let h = start().await;
    h.control
        .refuse_next_apply(edgeguard_admin::ApplyError::Failed("disk full".into()));
    let a = h
        .send_json(
            "PATCH",
            "/api/v1/domains/www.example.com",
            json!({"explain": true}),
        )
        .await;
    assert_eq!(a.status, 500);
    assert!(a.messages()[0].contains("disk full"));
    assert!(!h.control.config().domains[0].explain);
}

#[tokio::test]
async fn openapi_lists_the_paths() {
    let h = start().await;
    let doc = raw(h.addr, "GET", "/api/v1/openapi.json", None, None, b"")
        .await
        .json();
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for p in [
        "/api/v1/domains",
        "/api/v1/domains/{name}",
        "/api/v1/domains/{name}/ip-access-limit",
        "/api/v1/domains/{name}/rate-limiting",
        "/api/v1/domains/{name}/rate-limiting/rules",
        "/api/v1/domains/{name}/rate-limiting/rules/{rule}",
        "/api/v1/domains/{name}/rate-limiting/rules/order",
        "/api/v1/domains/{name}/origin-addresses",
        "/api/v1/domains/{name}/stats",
        "/api/v1/activity",
        "/api/v1/blocks",
        "/api/v1/blocks/{id}",
        "/api/v1/config",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(paths["/api/v1/domains/{name}"].get("patch").is_some());
    assert!(doc["components"]["schemas"]["RuleDoc"].is_object());
}

#[tokio::test]
async fn access_control_lists() {
    let h = start().await;
    let path = "/api/v1/domains/www.example.com/access-control";
    let got = h.get(path).await.json();
    assert_eq!(got, json!({"allow": [], "deny": []}));

    let set = h
        .send_json(
            "PUT",
            path,
            json!({"allow": ["192.0.2.0/24", "2001:db8::/32"], "deny": ["198.51.100.7"]}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text());
    let d = &h.control.config().domains[0];
    assert_eq!(d.access_control.allow.len(), 2);
    assert!(d.access_control.allow[1].contains("2001:db8::5".parse().unwrap()));
    assert!(d.access_control.deny[0].contains("198.51.100.7".parse().unwrap()));
    let again = h.get(path).await.json();
    assert_eq!(again["allow"][0], "192.0.2.0/24");
    assert_eq!(again["deny"][0], "198.51.100.7/32");

    let bad = h
        .send_json(
            "PUT",
            path,
            json!({"deny": ["198.51.100.0/33"], "alow": []}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let fields: Vec<String> = bad.json()["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect();
    assert!(fields.contains(&"deny[0]".to_owned()), "{fields:?}");
    assert!(fields.contains(&"alow".to_owned()), "{fields:?}");
    // The bad change left the lists as they were.
    assert_eq!(h.control.config().domains[0].access_control.deny.len(), 1);
    assert_eq!(
        h.get("/api/v1/domains/nope.example.com/access-control")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn baseline_shows_measures_shares_paths_and_warm_up() {
    let h = start().await;
    let empty = h.get("/api/v1/domains/www.example.com/baseline").await;
    assert_eq!(empty.status, 200);
    let e = empty.json();
    assert_eq!(
        e["learning"], false,
        "rate limiting is off in the test configuration"
    );
    assert_eq!(e["measures"], serde_json::json!([]));
    h.control.set_baseline(
        "WWW.example.com",
        edgeguard_admin::BaselineView {
            warming_up: true,
            measures: vec![edgeguard_admin::BaselineMeasure {
                measure: "new_clients_10s".into(),
                events: 10,
                p99: None,
                p999: None,
                threshold: 100,
            }],
            shares: edgeguard_admin::BaselineShares {
                requests: 1000,
                with_query: 100,
                unseen_query: 30,
                unseen_query_per_mille: 30,
                status_classes: Vec::new(),
            },
            top_paths: vec![edgeguard_admin::BaselinePath {
                path: "/".into(),
                samples: 5,
                requests_10s: 12,
                peak_10s: 20,
            }],
            paths_in_surge: 0,
            networks_flagged: 0,
            findings: vec![edgeguard_admin::BaselineFindings {
                rule: "baseline.surge".into(),
                count: 3,
            }],
        },
    );
    let b = h
        .get("/api/v1/domains/www.example.com/baseline")
        .await
        .json();
    assert_eq!(b["domain"], "www.example.com");
    assert_eq!(b["warming_up"], true);
    assert_eq!(b["measures"][0]["measure"], "new_clients_10s");
    assert_eq!(b["measures"][0]["p999"], serde_json::Value::Null);
    assert_eq!(b["shares"]["unseen_query_per_mille"], 30);
    assert_eq!(b["top_paths"][0]["requests_10s"], 12);
    assert_eq!(b["findings"][0]["rule"], "baseline.surge");
    assert_eq!(
        h.get("/api/v1/domains/none.example.com/baseline")
            .await
            .status,
        404
    );
}
