//! The "under attack" switch (`/api/v1/domains/{name}/under-attack`, `/api/v1/under-attack`) and the live-view
//! endpoints against the memory stand-in, which keeps no live counters.

mod common;

use common::*;
use edgeguard_admin::Control;
use edgeguard_config::Mode;
use serde_json::json;

const PATH: &str = "/api/v1/domains/www.example.com/under-attack";

#[tokio::test]
async fn switching_on_sets_emergency_and_a_challenge_and_the_end_restores_the_mode() {
    let h = start().await;
    let off = h.get(PATH).await;
    assert_eq!(off.status, 200, "{}", off.text());
    assert_eq!(off.json()["active"], false);

    let on = h
        .send_json("PUT", PATH, json!({"enabled": true, "ttl": 600}))
        .await;
    assert_eq!(on.status, 200, "{}", on.text());
    let id = on.json()["challenge_id"].as_str().unwrap().to_owned();
    let rl = &h.control.config().domains[0].rate_limiting;
    assert!(rl.enabled);
    assert_eq!(rl.mode, Mode::Emergency);
    let blocks = h.control.blocks();
    assert!(
        blocks
            .iter()
            .any(|b| b.id == id && b.object_type == "domain")
    );
    let all = h.get("/api/v1/under-attack").await.json();
    assert_eq!(all["domains"][0]["domain"], "www.example.com");

    // Switching off lifts the challenge and brings the mode back.
    let off = h.send_json("PUT", PATH, json!({"enabled": false})).await;
    assert_eq!(off.json()["active"], false);
    assert_eq!(
        h.control.config().domains[0].rate_limiting.mode,
        Mode::Normal
    );
    assert!(h.control.blocks().iter().all(|b| b.id != id));

    // Its time running out ends it too.
    h.send_json("PUT", PATH, json!({"enabled": true, "ttl": 60}))
        .await;
    assert_eq!(
        h.control.config().domains[0].rate_limiting.mode,
        Mode::Emergency
    );
    h.control.set_now_ms(h.control.now_ms() + 61_000);
    assert_eq!(h.get(PATH).await.json()["active"], false);
    assert_eq!(
        h.control.config().domains[0].rate_limiting.mode,
        Mode::Normal
    );

    let bad = h
        .send_json("PUT", PATH, json!({"enabled": true, "ttl": 0}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        h.get("/api/v1/domains/nope.example/under-attack")
            .await
            .status,
        404
    );
    h.admin.stop().await;
}

#[tokio::test]
async fn live_endpoints_check_parameters_and_say_when_the_node_keeps_nothing() {
    let h = start().await;
    let live = h.get("/api/v1/domains/www.example.com/live?step=5").await;
    assert_eq!(live.status, 404, "{}", live.text());
    assert_eq!(
        h.get("/api/v1/domains/www.example.com/live?step=0")
            .await
            .status,
        400
    );
    assert_eq!(
        h.get("/api/v1/domains/www.example.com/top-talkers?limit=x")
            .await
            .status,
        400
    );
    let block = h
        .send_json(
            "POST",
            "/api/v1/domains/www.example.com/blocks",
            json!({"ip": "not-an-ip", "ttl": 0, "action": "ban"}),
        )
        .await;
    assert_eq!(block.status, 400);
    let fields: Vec<String> = block.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(fields, ["ip", "action", "ttl"]);
    let doc = h.get("/api/v1/openapi.json").await.json();
    for p in ["live", "top-talkers", "blocks", "under-attack"] {
        assert!(
            doc["paths"][format!("/api/v1/domains/{{name}}/{p}")].is_object(),
            "{p} documented"
        );
    }
    h.admin.stop().await;
}
