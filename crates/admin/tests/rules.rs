//! Rate limiting and custom rules over real HTTP: every validation of SPEC section 4 comes back as a 400 naming
//! the field and the rule, all at once.

mod common;

use common::start;
use serde_json::{Value, json};

const RL: &str = "/api/v1/domains/www.example.com/rate-limiting";
const RULES: &str = "/api/v1/domains/www.example.com/rate-limiting/rules";

fn rule(name: &str) -> Value {
    json!({"name": name, "uri": "/register", "match": "prefix", "object": "ip", "interval": 10,
           "criteria": "\"count\">50", "action": "block", "ttl": 600})
}

fn errors(v: &Value) -> Vec<(String, String)> {
    v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or("").to_owned(),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rate_limiting_mode_and_switch() {
    let h = start().await;
    let got = h.get(RL).await.json();
    assert_eq!(got["enabled"], false);
    assert_eq!(got["mode"], "normal");
    assert_eq!(got["rules"], json!([]));
    let on = h
        .send_json("PUT", RL, json!({"enabled": true, "mode": "emergency"}))
        .await;
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(on.json()["mode"], "emergency");
    let bad = h.send_json("PUT", RL, json!({"mode": "paranoid"})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(errors(&bad.json())[0].0, "mode");
    // Custom mode needs rules.
    let empty = h.send_json("PUT", RL, json!({"mode": "custom"})).await;
    assert_eq!(empty.status, 400);
    assert!(
        errors(&empty.json())[0].1.contains("no rules"),
        "{}",
        empty.text()
    );
    // Mode and rules together.
    let custom = h
        .send_json("PUT", RL, json!({"mode": "custom", "parameter_check": true, "rules": [rule("register01")], "evaluation_order": []}))
        .await;
    assert_eq!(custom.status, 200, "{}", custom.text());
    assert_eq!(custom.json()["evaluation_order"], json!(["register01"]));
}

#[tokio::test]
async fn rule_crud_and_order() {
    let h = start().await;
    let added = h.send_json("POST", RULES, rule("register01")).await;
    assert_eq!(added.status, 201, "{}", added.text());
    assert_eq!(
        added.header("location"),
        Some("/api/v1/domains/www.example.com/rate-limiting/rules/register01")
    );
    let mut fuzzy = rule("login02");
    fuzzy["match"] = json!("fuzzy");
    fuzzy["uri"] = json!("/log*");
    fuzzy["action"] = json!("bot_detection");
    assert_eq!(h.send_json("POST", RULES, fuzzy).await.status, 201);
    let mut exact = rule("exact03");
    exact["match"] = json!("exact");
    assert_eq!(h.send_json("POST", RULES, exact).await.status, 201);
    let list = h.get(RULES).await.json();
    assert_eq!(list["rules"].as_array().map(Vec::len), Some(3));
    // Default order: exact, prefix, fuzzy.
    assert_eq!(
        list["evaluation_order"],
        json!(["exact03", "register01", "login02"])
    );

    let mut changed = rule("register01");
    changed["ttl"] = json!(3600);
    let put = h
        .send_json("PUT", &format!("{RULES}/register01"), changed)
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["ttl"], 3600);
    assert_eq!(
        h.get(&format!("{RULES}/REGISTER01")).await.json()["ttl"],
        3600
    );

    let order = h
        .send_json(
            "PUT",
            &format!("{RULES}/order"),
            json!({"names": ["login02", "register01", "exact03"]}),
        )
        .await;
    assert_eq!(order.status, 200, "{}", order.text());
    assert_eq!(
        order.json()["evaluation_order"],
        json!(["login02", "register01", "exact03"])
    );
    assert_eq!(order.json()["rules"][0]["priority"], 1);
    let partial = h
        .send_json(
            "PUT",
            &format!("{RULES}/order"),
            json!({"names": ["login02"]}),
        )
        .await;
    assert_eq!(partial.status, 400);
    assert!(errors(&partial.json())[0].1.contains("missing"));

    assert_eq!(
        h.call("DELETE", &format!("{RULES}/login02"), None, b"")
            .await
            .status,
        204
    );
    assert_eq!(
        h.call("DELETE", &format!("{RULES}/login02"), None, b"")
            .await
            .status,
        404
    );
    assert_eq!(h.get(&format!("{RULES}/login02")).await.status, 404);
    assert_eq!(
        h.send_json("PUT", &format!("{RULES}/nothing1"), rule("nothing1"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn every_rule_violation_at_once() {
    let h = start().await;
    let bad = json!({"name": "ab", "uri": "register", "match": "regex", "priority": -1, "object": "cookie",
                     "interval": 5, "criteria": "\"count\" >> 5", "action": "ban", "ttl": 30});
    let a = h.send_json("POST", RULES, bad).await;
    assert_eq!(a.status, 400);
    let body = a.json();
    let got = errors(&body);
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "name", "uri", "match", "priority", "object", "interval", "criteria", "action", "ttl"
        ],
        "{body}"
    );
    assert_eq!(body["errors"][0]["rule"], "ab");
    assert_eq!(body["errors"][0]["index"], 0);
    let msg = |f: &str| {
        got.iter()
            .find(|(x, _)| x == f)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(msg("name").contains("4 to 30"));
    assert!(msg("interval").contains("between 10 and 600"));
    assert!(msg("ttl").contains("at least 60"));
    assert!(msg("criteria").contains("column"), "{}", msg("criteria"));

    let bad_char = h.send_json("POST", RULES, rule("bad-name")).await;
    assert!(
        errors(&bad_char.json())[0]
            .1
            .contains("only ASCII letters and digits")
    );

    assert_eq!(
        h.send_json("POST", RULES, rule("register01")).await.status,
        201
    );
    let dup = h.send_json("POST", RULES, rule("REGISTER01")).await;
    assert_eq!(dup.status, 400);
    assert!(errors(&dup.json())[0].1.contains("already used"));

    // A query string needs parameter_check.
    let mut query = rule("query01");
    query["uri"] = json!("/user?action=login");
    let q = h.send_json("POST", RULES, query).await;
    assert_eq!(q.status, 400);
    assert!(
        errors(&q.json())[0].1.contains("parameter_check"),
        "{}",
        q.text()
    );

    // At most five.
    for n in ["rule0002", "rule0003", "rule0004", "rule0005"] {
        assert_eq!(h.send_json("POST", RULES, rule(n)).await.status, 201);
    }
    let sixth = h.send_json("POST", RULES, rule("rule0006")).await;
    assert_eq!(sixth.status, 400);
    assert_eq!(errors(&sixth.json())[0].0, "rules");
    assert!(errors(&sixth.json())[0].1.contains("at most 5"));

    // Wrong types and unknown fields are named too.
    let typed = h
        .send_json("POST", RULES, json!({"name": "typed01", "uri": "/x", "match": "exact", "object": "ip",
                                          "interval": "ten", "criteria": "\"count\">1", "action": "block", "ttl": 60, "colour": 1}))
        .await;
    assert_eq!(typed.status, 400);
    let fields: Vec<String> = errors(&typed.json()).into_iter().map(|(f, _)| f).collect();
    assert!(fields.contains(&"interval".to_owned()), "{fields:?}");
    assert!(fields.contains(&"colour".to_owned()), "{fields:?}");
}
