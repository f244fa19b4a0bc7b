//! Upstream channels over HTTP: administrators only, keys sealed at rest and never
//! shown again, validation naming fields.

mod common;

use common::{expect_error, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn openai_channel() -> Value {
    json!({
        "name": "OpenAI main",
        "provider": "openai",
        "base_url": "https://api.openai.com/v1/",
        "keys": ["sk-proj-aaaaaaaaaaaaaaaa1111", "sk-proj-bbbbbbbbbbbbbbbb2222"],
        "models": ["gpt-4o", "gpt-4o-mini"],
        "model_map": {"gpt-4o": "gpt-4o-2024-08-06"},
        "priority": 10,
        "weight": 3,
        "rpm_limit": 500
    })
}

#[tokio::test]
async fn channels_keep_their_keys_sealed() {
    let app = TestApp::spawn().await;
    let admin = app.admin("ops@example.com").await;
    let res = app.post("/api/admin/channels").bearer_auth(&admin.access).json(&openai_channel()).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["base_url"], "https://api.openai.com/v1", "trailing slash trimmed");
    assert_eq!(created["key_hints"], json!(["…1111", "…2222"]));
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["model_map"]["gpt-4o"], "gpt-4o-2024-08-06");
    let listed = app.get("/api/admin/channels").bearer_auth(&admin.access).send().await.unwrap().text().await.unwrap();
    let fetched = app
        .get(&format!("/api/admin/channels/{id}"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for body in [created.to_string(), listed, fetched] {
        assert!(
            !body.contains("aaaaaaaaaaaaaaaa1111") && !body.contains("bbbbbbbbbbbbbbbb2222"),
            "a key leaked: {body}"
        );
    }
    // At rest: only ciphertext, which opens with the master key to the original keys.
    let stored = app.state.store.channel(id).await.unwrap().unwrap();
    assert!(stored.spec.keys_ciphertext.starts_with("v1:"));
    assert!(!stored.spec.keys_ciphertext.contains("sk-proj"));
    let keys = firefly_server::relay::channels::open_keys(&app.state.master_key, &stored.spec).unwrap();
    assert_eq!(keys, vec!["sk-proj-aaaaaaaaaaaaaaaa1111", "sk-proj-bbbbbbbbbbbbbbbb2222"]);

    // Updating other fields keeps the keys; giving keys replaces them all.
    let patch = |body: Value| {
        app.req(Method::PATCH, &format!("/api/admin/channels/{id}")).bearer_auth(admin.access.clone()).json(&body)
    };
    let res = patch(json!({"priority": 20, "enabled": false})).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["priority"].as_i64(), body["status"].as_str()), (Some(20), Some("disabled")));
    assert_eq!(body["key_hints"], json!(["…1111", "…2222"]));
    let res = patch(json!({"keys": ["sk-new-cccccccccccccccc3333"], "rpm_limit": null})).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["key_hints"], json!(["…3333"]));
    assert_eq!(body["rpm_limit"], Value::Null);
    let stored = app.state.store.channel(id).await.unwrap().unwrap();
    assert_eq!(
        firefly_server::relay::channels::open_keys(&app.state.master_key, &stored.spec).unwrap(),
        vec!["sk-new-cccccccccccccccc3333"]
    );

    let res =
        app.req(Method::DELETE, &format!("/api/admin/channels/{id}")).bearer_auth(&admin.access).send().await.unwrap();
    assert_eq!(res.status(), 204);
    expect_error(
        app.get(&format!("/api/admin/channels/{id}")).bearer_auth(&admin.access).send().await.unwrap(),
        404,
        "resource.not_found",
    )
    .await;
}

#[tokio::test]
async fn channel_validation_names_fields() {
    let app = TestApp::spawn().await;
    let admin = app.admin("ops2@example.com").await;
    let cases = [
        ("provider", json!({"provider": "acme"})),
        ("base_url", json!({"base_url": "ftp://example.com"})),
        ("base_url", json!({"base_url": "not a url"})),
        ("base_url", json!({"base_url": "https://user:pass@api.example.com/v1"})),
        ("base_url", json!({"base_url": "https://api.example.com/v1?key=secret"})),
        ("api_version", json!({"provider": "azure"})),
        ("models", json!({"models": []})),
        ("model_map.o1", json!({"model_map": {"o1": "o1-preview"}})),
        ("weight", json!({"weight": -1})),
        ("priority", json!({"priority": 5000})),
        ("keys[0]", json!({"keys": ["has space"]})),
        ("rpm_limit", json!({"rpm_limit": 0})),
    ];
    for (field, change) in cases {
        let mut body = openai_channel();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = app.post("/api/admin/channels").bearer_auth(&admin.access).json(&body).send().await.unwrap();
        let err = expect_error(res, 422, "validation.failed").await;
        let fields: Vec<&str> = err["error"]["details"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{field}: {fields:?}");
    }
    let list: Value =
        app.get("/api/admin/channels").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"], json!([]), "nothing was created");
    // Azure with its api-version and no keys is fine (keyless local servers too).
    let mut azure = openai_channel();
    azure["provider"] = json!("azure");
    azure["api_version"] = json!("2024-10-21");
    azure["keys"] = json!([]);
    let res = app.post("/api/admin/channels").bearer_auth(&admin.access).json(&azure).send().await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["key_hints"], json!([]));
}

#[tokio::test]
async fn only_admins_touch_channels() {
    let app = TestApp::spawn().await;
    let admin = app.admin("ops3@example.com").await;
    let user = app.register("curious@example.com").await;
    let created: Value = app
        .post("/api/admin/channels")
        .bearer_auth(&admin.access)
        .json(&openai_channel())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let attempts = [
        app.get("/api/admin/channels").bearer_auth(&user.access),
        app.get(&format!("/api/admin/channels/{id}")).bearer_auth(&user.access),
        app.post("/api/admin/channels").bearer_auth(&user.access).json(&openai_channel()),
        app.req(Method::PATCH, &format!("/api/admin/channels/{id}"))
            .bearer_auth(&user.access)
            .json(&json!({"enabled": false})),
        app.req(Method::DELETE, &format!("/api/admin/channels/{id}")).bearer_auth(&user.access),
    ];
    for req in attempts {
        expect_error(req.send().await.unwrap(), 403, "auth.forbidden").await;
    }
    let got: Value = app
        .get(&format!("/api/admin/channels/{id}"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["status"], "enabled", "the forbidden patch did nothing");
}
