//! API keys over HTTP: shown once, stored hashed, authenticated by either header,
//! limited by expiry and IP allow-list, and owned: no user reaches another's keys.

mod common;

use common::{expect_error, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn create_shows_the_key_once_and_lists_only_the_prefix() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let res = app
        .post("/api/keys")
        .bearer_auth(&s.access)
        .json(&json!({
            "name": "laptop",
            "expires_at": "2999-01-01T00:00:00Z",
            "models": ["gpt-4o-mini", "qwen-max"],
            "ip_allow": ["127.0.0.1", "10.0.0.0/8"],
            "credit_limit": 1000,
            "rpm_limit": 60
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("sk-ff-"), "{key}");
    // 32 random bytes, base64url: 43 characters after the prefix (256 bits).
    assert_eq!(key.len(), "sk-ff-".len() + 43);
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["expires_at"], "2999-01-01T00:00:00.000Z");
    assert_eq!(created["models"], json!(["gpt-4o-mini", "qwen-max"]));
    assert_eq!(created["ip_allow"], json!(["127.0.0.1/32", "10.0.0.0/8"]));
    assert_eq!(created["credit_limit"], 1000);
    assert_eq!(created["rpm_limit"], 60);

    let list: Value = app.get("/api/keys").bearer_auth(&s.access).send().await.unwrap().json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0].get("key").is_none(), "the full key is never shown again");
    assert!(!list.to_string().contains(key));
    assert_eq!(items[0]["name"], "laptop");
}

#[tokio::test]
async fn key_authenticates_with_bearer_or_x_api_key() {
    let app = TestApp::spawn().await;
    let s = app.register("ben@example.com").await;
    let (id, key) = app.create_key(&s, json!({"name": "k"})).await;
    for req in [app.get("/api/keys/current").bearer_auth(&key), app.get("/api/keys/current").header("x-api-key", &key)]
    {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["id"], id);
    }
    expect_error(app.get("/api/keys/current").send().await.unwrap(), 401, "auth.unauthenticated").await;
    let wrong = format!("{}x", &key[..key.len() - 1]);
    expect_error(app.get("/api/keys/current").bearer_auth(&wrong).send().await.unwrap(), 401, "api_key.invalid").await;
    expect_error(app.get("/api/keys/current").bearer_auth(&s.access).send().await.unwrap(), 401, "api_key.invalid")
        .await;
    // A key is not a login token either.
    expect_error(app.get("/api/keys").bearer_auth(&key).send().await.unwrap(), 401, "auth.token_invalid").await;
}

#[tokio::test]
async fn deleted_or_disabled_keys_stop_at_once() {
    let app = TestApp::spawn().await;
    let s = app.register("cat@example.com").await;
    let (id, key) = app.create_key(&s, json!({"name": "k"})).await;
    assert_eq!(app.get("/api/keys/current").bearer_auth(&key).send().await.unwrap().status(), 200);

    let res = app
        .req(Method::PATCH, &format!("/api/keys/{id}"))
        .bearer_auth(&s.access)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expect_error(app.get("/api/keys/current").bearer_auth(&key).send().await.unwrap(), 401, "api_key.invalid").await;
    let res = app
        .req(Method::PATCH, &format!("/api/keys/{id}"))
        .bearer_auth(&s.access)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/api/keys/current").bearer_auth(&key).send().await.unwrap().status(), 200);

    let res = app.req(Method::DELETE, &format!("/api/keys/{id}")).bearer_auth(&s.access).send().await.unwrap();
    assert_eq!(res.status(), 204);
    expect_error(app.get("/api/keys/current").bearer_auth(&key).send().await.unwrap(), 401, "api_key.invalid").await;
    let res = app.req(Method::DELETE, &format!("/api/keys/{id}")).bearer_auth(&s.access).send().await.unwrap();
    expect_error(res, 404, "resource.not_found").await;
    let list: Value = app.get("/api/keys").bearer_auth(&s.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn a_disabled_owners_keys_stop_within_a_second() {
    let app = TestApp::spawn().await;
    let admin = app.admin("boss@example.com").await;
    let s = app.register("dan@example.com").await;
    let (_, key) = app.create_key(&s, json!({"name": "k"})).await;
    assert_eq!(app.get("/api/keys/current").bearer_auth(&key).send().await.unwrap().status(), 200);
    let res = app
        .req(Method::PUT, &format!("/api/admin/users/{}/status", s.user_id))
        .bearer_auth(&admin.access)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expect_error(app.get("/api/keys/current").bearer_auth(&key).send().await.unwrap(), 401, "api_key.invalid").await;
}

#[tokio::test]
async fn revocation_reaches_other_instances_within_the_cache_ttl() {
    // A second server on the same database stands for another instance behind a load balancer.
    if common::backend() != "sqlite" {
        // Sharing a fresh MySQL/PostgreSQL database between two harness servers needs the same URL;
        // the harness makes one database per server, so this case runs on SQLite.
        return;
    }
    let app = TestApp::spawn().await;
    let s = app.register("eve@example.com").await;
    let (id, key) = app.create_key(&s, json!({"name": "k"})).await;
    let db = app.state.config.database_url();
    let other = TestApp::spawn_with(|c| c.database.url = Some(db.clone())).await;
    assert_eq!(other.get("/api/keys/current").bearer_auth(&key).send().await.unwrap().status(), 200);
    let res = app.req(Method::DELETE, &format!("/api/keys/{id}")).bearer_auth(&s.access).send().await.unwrap();
    assert_eq!(res.status(), 204);
    tokio::time::sleep(firefly_server::state::AUTH_CACHE_TTL + std::time::Duration::from_millis(50)).await;
    expect_error(other.get("/api/keys/current").bearer_auth(&key).send().await.unwrap(), 401, "api_key.invalid").await;
}

#[tokio::test]
async fn expiry_and_ip_allow_list_are_enforced() {
    let app = TestApp::spawn().await;
    let s = app.register("fay@example.com").await;
    let (_, elsewhere) = app.create_key(&s, json!({"name": "office only", "ip_allow": ["203.0.113.0/24"]})).await;
    expect_error(app.get("/api/keys/current").bearer_auth(&elsewhere).send().await.unwrap(), 403, "api_key.ip_denied")
        .await;
    let (_, local) = app.create_key(&s, json!({"name": "local", "ip_allow": ["127.0.0.0/8", "::1"]})).await;
    assert_eq!(app.get("/api/keys/current").bearer_auth(&local).send().await.unwrap().status(), 200);

    let soon = chrono_in_ms(1500);
    let (id, expiring) = app.create_key(&s, json!({"name": "brief", "expires_at": soon})).await;
    assert_eq!(app.get("/api/keys/current").bearer_auth(&expiring).send().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    expect_error(app.get("/api/keys/current").bearer_auth(&expiring).send().await.unwrap(), 401, "api_key.invalid")
        .await;
    // Clearing the expiry brings it back.
    let res = app
        .req(Method::PATCH, &format!("/api/keys/{id}"))
        .bearer_auth(&s.access)
        .json(&json!({"expires_at": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["expires_at"], Value::Null);
    assert_eq!(app.get("/api/keys/current").bearer_auth(&expiring).send().await.unwrap().status(), 200);
}

fn chrono_in_ms(ms: u64) -> String {
    let at = std::time::SystemTime::now() + std::time::Duration::from_millis(ms);
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    firefly_server::accounts::rfc3339(secs)
}

#[tokio::test]
async fn patch_changes_only_given_fields_and_validates() {
    let app = TestApp::spawn().await;
    let s = app.register("gus@example.com").await;
    let (id, _) = app.create_key(&s, json!({"name": "k", "credit_limit": 50, "rpm_limit": 10})).await;
    let res = app
        .req(Method::PATCH, &format!("/api/keys/{id}"))
        .bearer_auth(&s.access)
        .json(&json!({"name": "renamed", "rpm_limit": null, "models": ["deepseek-chat"]}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "renamed");
    assert_eq!(body["rpm_limit"], Value::Null);
    assert_eq!(body["credit_limit"], 50);
    assert_eq!(body["models"], json!(["deepseek-chat"]));

    let res = app
        .req(Method::PATCH, &format!("/api/keys/{id}"))
        .bearer_auth(&s.access)
        .json(&json!({"credit_limit": -1, "ip_allow": ["not-an-ip"], "expires_at": "2001-01-01T00:00:00Z", "models": [""]}))
        .send()
        .await
        .unwrap();
    let body = expect_error(res, 422, "validation.failed").await;
    let mut fields: Vec<&str> =
        body["error"]["details"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, vec!["credit_limit", "expires_at", "ip_allow[0]", "models[0]"]);
    let list: Value = app.get("/api/keys").bearer_auth(&s.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["credit_limit"], 50, "a rejected patch wrote nothing");
    assert_eq!(list["items"][0]["name"], "renamed");
}

#[tokio::test]
async fn users_never_reach_each_others_keys() {
    let app = TestApp::spawn().await;
    let a = app.register("hal@example.com").await;
    let b = app.register("ida@example.com").await;
    let (a_key_id, a_key) = app.create_key(&a, json!({"name": "a's"})).await;
    let list: Value = app.get("/api/keys").bearer_auth(&b.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"], json!([]));
    let res = app
        .req(Method::PATCH, &format!("/api/keys/{a_key_id}"))
        .bearer_auth(&b.access)
        .json(&json!({"name": "pwned", "enabled": false}))
        .send()
        .await
        .unwrap();
    expect_error(res, 404, "resource.not_found").await;
    let res = app.req(Method::DELETE, &format!("/api/keys/{a_key_id}")).bearer_auth(&b.access).send().await.unwrap();
    expect_error(res, 404, "resource.not_found").await;
    // a's key still works and is unchanged.
    let res = app.get("/api/keys/current").bearer_auth(&a_key).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "a's");
}

#[tokio::test]
async fn key_routes_validate_path_ids() {
    let app = TestApp::spawn().await;
    let s = app.register("jay@example.com").await;
    let res = app.req(Method::DELETE, "/api/keys/abc").bearer_auth(&s.access).send().await.unwrap();
    expect_error(res, 400, "request.invalid_path").await;
    let res = app.req(Method::DELETE, "/api/keys/99999999999999999999999").bearer_auth(&s.access).send().await.unwrap();
    expect_error(res, 400, "request.invalid_path").await;
}
