//! Administration over HTTP, and that only administrators get in.

mod common;

use common::{expect_error, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn non_admins_never_reach_admin_routes() {
    let app = TestApp::spawn().await;
    let user = app.register("plain@example.com").await;
    let routes = [
        (Method::GET, "/api/admin/users".to_owned(), None),
        (Method::PUT, format!("/api/admin/users/{}/status", user.user_id), Some(json!({"status": "disabled"}))),
        (Method::PUT, format!("/api/admin/users/{}/role", user.user_id), Some(json!({"role": "admin"}))),
    ];
    for (method, path, body) in routes {
        let with = |req: reqwest::RequestBuilder| match &body {
            Some(b) => req.json(b),
            None => req,
        };
        let res = with(app.req(method.clone(), &path)).send().await.unwrap();
        expect_error(res, 401, "auth.unauthenticated").await;
        let res = with(app.req(method.clone(), &path).bearer_auth(&user.access)).send().await.unwrap();
        expect_error(res, 403, "auth.forbidden").await;
    }
    let profile: Value =
        app.get("/api/auth/profile").bearer_auth(&user.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(profile["role"], "user", "the forbidden role change did not happen");
    assert_eq!(profile["status"], "active");
}

#[tokio::test]
async fn list_users_pages_and_searches() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.com").await;
    for i in 0..5 {
        app.register(&format!("member{i}@example.com")).await;
    }
    app.register("zed@other.test").await;
    let page: Value = app
        .get("/api/admin/users?per_page=2&page=1")
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 7);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["email"], "zed@other.test", "newest first");
    assert!(page["items"][0].get("password_hash").is_none());
    let last: Value = app
        .get("/api/admin/users?per_page=2&page=4")
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert_eq!(last["items"][0]["email"], "admin@example.com");
    let found: Value = app
        .get("/api/admin/users?search=MEMBER3")
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["email"], "member3@example.com");

    for bad in ["/api/admin/users?per_page=0", "/api/admin/users?page=0", "/api/admin/users?per_page=101"] {
        expect_error(app.get(bad).bearer_auth(&admin.access).send().await.unwrap(), 422, "validation.failed").await;
    }
    expect_error(
        app.get("/api/admin/users?page=abc").bearer_auth(&admin.access).send().await.unwrap(),
        400,
        "request.invalid_query",
    )
    .await;
}

#[tokio::test]
async fn enable_disable_and_roles() {
    let app = TestApp::spawn().await;
    let admin = app.admin("chief@example.com").await;
    let user = app.register("worker@example.com").await;
    let status = |id: i64, s: &str| {
        app.req(Method::PUT, &format!("/api/admin/users/{id}/status"))
            .bearer_auth(&admin.access)
            .json(&json!({"status": s}))
    };
    let body: Value = status(user.user_id, "disabled").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "disabled");
    let body: Value = status(user.user_id, "active").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "active");
    expect_error(status(user.user_id, "frozen").send().await.unwrap(), 422, "validation.failed").await;
    expect_error(status(999_999, "disabled").send().await.unwrap(), 404, "resource.not_found").await;
    expect_error(status(admin.user_id, "disabled").send().await.unwrap(), 409, "resource.conflict").await;

    let role = |id: i64, r: &str| {
        app.req(Method::PUT, &format!("/api/admin/users/{id}/role"))
            .bearer_auth(&admin.access)
            .json(&json!({"role": r}))
    };
    // The last administrator cannot demote themselves.
    expect_error(role(admin.user_id, "user").send().await.unwrap(), 409, "resource.conflict").await;
    let body: Value = role(user.user_id, "admin").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["role"], "admin");
    // The promoted user now reaches admin routes with the token they already had.
    assert_eq!(app.get("/api/admin/users").bearer_auth(&user.access).send().await.unwrap().status(), 200);
    let body: Value = role(user.user_id, "user").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["role"], "user");
    expect_error(app.get("/api/admin/users").bearer_auth(&user.access).send().await.unwrap(), 403, "auth.forbidden")
        .await;
}

#[tokio::test]
async fn the_last_active_administrator_stays() {
    let app = TestApp::spawn().await;
    let a = app.admin("a-admin@example.com").await;
    let b = app.admin("b-admin@example.com").await;
    let put = |who: &common::Session, path: String, body: Value| {
        app.req(Method::PUT, &path).bearer_auth(who.access.clone()).json(&body)
    };
    // A disables B: allowed, A is still active.
    let res =
        put(&a, format!("/api/admin/users/{}/status", b.user_id), json!({"status": "disabled"})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // A disabled administrator does not count: A cannot step down now.
    let res = put(&a, format!("/api/admin/users/{}/role", a.user_id), json!({"role": "user"})).send().await.unwrap();
    expect_error(res, 409, "resource.conflict").await;
    // Re-enabled, B counts again and A may step down.
    let res =
        put(&a, format!("/api/admin/users/{}/status", b.user_id), json!({"status": "active"})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = put(&a, format!("/api/admin/users/{}/role", a.user_id), json!({"role": "user"})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // B is the last active administrator now; a third admin, disabled, does not count.
    let c = app.admin("c-admin@example.com").await;
    let res =
        put(&b, format!("/api/admin/users/{}/status", c.user_id), json!({"status": "disabled"})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = put(&b, format!("/api/admin/users/{}/role", b.user_id), json!({"role": "user"})).send().await.unwrap();
    expect_error(res, 409, "resource.conflict").await;
    let profile: Value =
        app.get("/api/auth/profile").bearer_auth(&b.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(profile["role"], "admin");
}
