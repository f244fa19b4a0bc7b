//! Operations endpoints, headers, request ids, metrics and the OpenAPI document.

mod common;

use common::TestApp;
use serde_json::Value;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    let res = app.get("/readyz").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], common::backend());
    assert!(body["migrations_applied"].as_i64().unwrap() >= 1);
    assert_eq!(body["migrations_applied"], body["migrations_expected"]);
}

#[tokio::test]
async fn request_ids_are_taken_or_generated_and_returned() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz").header("x-request-id", "trace-abc_123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc_123");
    let res = app.get("/healthz").send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    // An id with unsafe characters is replaced, not echoed.
    let res = app.get("/healthz").header("x-request-id", "bad id <script>").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"].len(), 32);
    let res = app.get("/healthz").header("x-request-id", "x".repeat(200)).send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"].len(), 32, "overlong ids are replaced");
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/api/nope", "/api/auth/profile", "/openapi.json"] {
        let res = app.get(path).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
        assert!(h.get("strict-transport-security").is_none(), "HSTS is off unless configured");
    }
    let app = TestApp::spawn_with(|c| c.server.hsts = true).await;
    assert!(app.get("/healthz").send().await.unwrap().headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn cors_is_off_by_default_and_configurable() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz").header("origin", "https://console.example.com").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let app = TestApp::spawn_with(|c| c.server.cors_origins = vec!["https://console.example.com".into()]).await;
    let res = app
        .req(reqwest::Method::OPTIONS, "/api/auth/login")
        .header("origin", "https://console.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], "https://console.example.com");
    let allowed = res.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "browsers never let `*` cover Authorization: {allowed}");
    let res = app.get("/healthz").header("origin", "https://evil.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn metrics_follow_the_alert_rule_names() {
    let app = TestApp::spawn().await;
    app.get("/healthz").send().await.unwrap();
    app.get("/api/nope").send().await.unwrap();
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle) || (l.contains(needle) && !l.starts_with('#')));
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("method=\"GET\"")
            && l.contains("route=\"/healthz\"")
            && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("http_requests_total{")
        && l.contains("route=\"unmatched\"")
        && l.contains("status=\"404\"")));
    assert!(has("http_request_duration_seconds_bucket{"), "{text}");
    assert!(text.contains("le=\"0.005\""));
    assert!(has("db_pool_connections{"), "{text}");
    assert!(has("db_pool_max_connections{"), "{text}");
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/refresh"),
        ("post", "/api/auth/logout"),
        ("get", "/api/auth/profile"),
        ("put", "/api/auth/profile"),
        ("post", "/api/auth/password"),
        ("get", "/api/users/me/preferences"),
        ("put", "/api/users/me/preferences"),
        ("post", "/api/keys"),
        ("get", "/api/keys"),
        ("patch", "/api/keys/{id}"),
        ("delete", "/api/keys/{id}"),
        ("get", "/api/keys/current"),
        ("get", "/api/admin/users"),
        ("put", "/api/admin/users/{id}/status"),
        ("put", "/api/admin/users/{id}/role"),
        ("get", "/api/billing/balance"),
        ("get", "/api/billing/ledger"),
        ("post", "/api/billing/redeem"),
        ("post", "/api/admin/users/{id}/credits"),
        ("post", "/api/admin/redemption-codes"),
        ("get", "/api/admin/redemption-codes"),
        ("get", "/api/admin/models"),
        ("put", "/api/admin/models/{model}"),
        ("delete", "/api/admin/models/{model}"),
        ("get", "/api/admin/groups"),
        ("post", "/api/admin/groups"),
        ("patch", "/api/admin/groups/{id}"),
        ("delete", "/api/admin/groups/{id}"),
        ("put", "/api/admin/users/{id}/group"),
        ("get", "/api/admin/channels"),
        ("post", "/api/admin/channels"),
        ("get", "/api/admin/channels/{id}"),
        ("patch", "/api/admin/channels/{id}"),
        ("delete", "/api/admin/channels/{id}"),
        ("post", "/api/admin/channels/{id}/test"),
        ("get", "/v1/models"),
        ("get", "/v1/models/{model}"),
        ("post", "/v1/chat/completions"),
        ("post", "/v1/embeddings"),
        ("post", "/v1/images/generations"),
        ("post", "/v1/audio/speech"),
        ("post", "/v1/audio/transcriptions"),
        ("post", "/v1/messages"),
        ("post", "/v1/messages/count_tokens"),
        ("get", "/api/usage/logs"),
        ("get", "/api/admin/usage/logs"),
        ("get", "/api/usage/stats"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
        ("get", "/docs/app.js"),
    ];
    for (method, path) in expected {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is undocumented");
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, expected.len(), "a route is documented that the test does not know");
    // Every documented route exists: none answers route.not_found.
    for (method, path) in expected {
        let res =
            app.req(method.parse().unwrap(), &path.replace("{id}", "1").replace("{model}", "m")).send().await.unwrap();
        assert_ne!(res.status(), 404, "{method} {path}");
    }
    let mut doc = doc;
    doc["info"]["version"] = Value::String("[version]".into());
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test]
async fn docs_page_renders_from_the_binary() {
    let app = TestApp::spawn().await;
    let res = app.get("/docs").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.contains("/docs/app.js"));
    assert!(!html.contains("https://"), "the page loads nothing from elsewhere");
    let js = app.get("/docs/app.js").send().await.unwrap().text().await.unwrap();
    assert!(js.contains("/openapi.json"));
}
