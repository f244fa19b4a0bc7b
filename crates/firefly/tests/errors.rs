//! Bad input of every kind gets a 4xx in the one error shape, never a 5xx, and writes
//! nothing. The bodies are snapshotted so a changed code or message is a visible diff.

mod common;

use common::{expect_error, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn snapshot_body(name: &str, body: &Value) {
    insta::assert_json_snapshot!(name, body, {".error.request_id" => "[request_id]"});
}

#[tokio::test]
async fn malformed_bodies_answer_4xx_with_codes() {
    let app = TestApp::spawn().await;
    let register = |body: &'static str, content_type: &'static str| {
        app.post("/api/auth/register").header("content-type", content_type).body(body)
    };
    let cases = [
        ("malformed_json", register("{\"email\": ", "application/json"), 400, "request.malformed_json"),
        ("not_json_at_all", register("email=a@b.co", "application/json"), 400, "request.malformed_json"),
        ("wrong_content_type", register("{}", "text/plain"), 415, "request.unsupported_media_type"),
        ("missing_field", register("{\"email\": \"a@b.co\"}", "application/json"), 422, "validation.failed"),
        (
            "wrong_type",
            register("{\"email\": 42, \"password\": \"long enough\"}", "application/json"),
            422,
            "validation.failed",
        ),
        (
            "unknown_field",
            register("{\"email\": \"a@b.co\", \"password\": \"long enough\", \"role\": \"admin\"}", "application/json"),
            422,
            "validation.failed",
        ),
        ("json_array_body", register("[]", "application/json"), 422, "validation.failed"),
    ];
    for (name, req, status, code) in cases {
        let body = expect_error(req.send().await.unwrap(), status, code).await;
        snapshot_body(name, &body);
    }
    // None of those created an account.
    let admin = app.admin("root@example.com").await;
    let users: Value =
        app.get("/api/admin/users").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(users["total"], 1);
}

#[tokio::test]
async fn missing_and_wrong_typed_fields_are_named() {
    let app = TestApp::spawn().await;
    let res = app.post("/api/auth/login").json(&json!({"password": "x"})).send().await.unwrap();
    let body = expect_error(res, 422, "validation.failed").await;
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "email");
    let s = app.register("typed@example.com").await;
    let res = app
        .post("/api/keys")
        .bearer_auth(&s.access)
        .json(&json!({"name": "k", "models": ["a", 7]}))
        .send()
        .await
        .unwrap();
    let body = expect_error(res, 422, "validation.failed").await;
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "models[1]");
    snapshot_body("nested_wrong_type", &body);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = TestApp::spawn_with(|c| c.server.body_limit_bytes = 4096).await;
    let big = json!({"email": "big@example.com", "password": "x".repeat(10_000)});
    let res = app.post("/api/auth/register").json(&big).send().await.unwrap();
    let body = expect_error(res, 413, "request.body_too_large").await;
    snapshot_body("body_too_large", &body);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let app = TestApp::spawn().await;
    let body = expect_error(app.get("/api/nope").send().await.unwrap(), 404, "route.not_found").await;
    snapshot_body("route_not_found", &body);
    let body = expect_error(app.get("/api/auth/login").send().await.unwrap(), 405, "route.method_not_allowed").await;
    snapshot_body("method_not_allowed", &body);
    expect_error(app.req(Method::DELETE, "/healthz").send().await.unwrap(), 405, "route.method_not_allowed").await;
}

#[tokio::test]
async fn auth_error_bodies() {
    let app = TestApp::spawn().await;
    let body = expect_error(app.get("/api/auth/profile").send().await.unwrap(), 401, "auth.unauthenticated").await;
    snapshot_body("unauthenticated", &body);
    let res = app
        .post("/api/auth/login")
        .json(&json!({"email": "no@example.com", "password": "whatever!"}))
        .send()
        .await
        .unwrap();
    let body = expect_error(res, 401, "auth.invalid_credentials").await;
    snapshot_body("invalid_credentials", &body);
    let s = app.register("who@example.com").await;
    let body =
        expect_error(app.get("/api/admin/users").bearer_auth(&s.access).send().await.unwrap(), 403, "auth.forbidden")
            .await;
    snapshot_body("forbidden", &body);
}

#[tokio::test]
async fn hostile_strings_never_cause_5xx() {
    let app = TestApp::spawn().await;
    let s = app.register("fuzz@example.com").await;
    let admin = app.admin("fuzzadmin@example.com").await;
    let nasty =
        ["'; DROP TABLE users; --", "\u{0000}", "%_\\", "😀".repeat(300).as_str().to_owned().leak(), "\u{202e}rtl"];
    for text in nasty {
        let checks = [
            app.post("/api/auth/login").json(&json!({"email": text, "password": text})),
            app.post("/api/auth/register").json(&json!({"email": text, "password": text, "display_name": text})),
            app.post("/api/keys")
                .bearer_auth(&s.access)
                .json(&json!({"name": text, "models": [text], "ip_allow": [text]})),
            app.get(&format!("/api/admin/users?search={}", urlencode(text))).bearer_auth(&admin.access),
            app.post("/api/auth/refresh").json(&json!({"refresh_token": text})),
            app.get("/api/keys/current").header("x-api-key", text.replace('\u{0000}', "")),
        ];
        for req in checks {
            let res = req.send().await.unwrap();
            assert!(res.status().is_client_error() || res.status().is_success(), "{text:?} gave {}", res.status());
        }
    }
    let users: Value =
        app.get("/api/admin/users").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(users["total"], 2, "the users table survived");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
