//! Accounts over HTTP: registration, login, refresh rotation, logout, profile,
//! password, preferences, and that no user can touch another's.

mod common;

use common::{expect_error, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn register_returns_user_and_tokens() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/auth/register")
        .json(&json!({"email": "  Ada@Example.COM ", "password": "correct horse battery", "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["display_name"], "Ada");
    assert_eq!(body["user"]["role"], "user");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["user"].get("password_hash").is_none());
    assert!(body["refresh_token"].as_str().unwrap().len() >= 40);
}

#[tokio::test]
async fn email_is_unique_regardless_of_case() {
    let app = TestApp::spawn().await;
    app.register("bob@example.com").await;
    let res = app
        .post("/api/auth/register")
        .json(&json!({"email": "BOB@example.com", "password": "another password"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 409, "auth.email_taken").await;
    // Login works with any case.
    app.login("Bob@Example.com", "correct horse battery").await;
}

#[tokio::test]
async fn register_validation_names_every_field() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/auth/register")
        .json(&json!({"email": "not-an-email", "password": "short", "display_name": "   "}))
        .send()
        .await
        .unwrap();
    let body = expect_error(res, 422, "validation.failed").await;
    let fields: Vec<&str> =
        body["error"]["details"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["email", "password", "display_name"]);
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = TestApp::spawn_with(|c| c.auth.allow_registration = false).await;
    let res = app
        .post("/api/auth/register")
        .json(&json!({"email": "x@example.com", "password": "long enough pw"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 403, "auth.forbidden").await;
}

#[tokio::test]
async fn login_rejects_wrong_password_and_unknown_email_alike() {
    let app = TestApp::spawn().await;
    app.register("carol@example.com").await;
    for (email, password) in [("carol@example.com", "wrong password!"), ("nobody@example.com", "correct horse battery")]
    {
        let res =
            app.post("/api/auth/login").json(&json!({"email": email, "password": password})).send().await.unwrap();
        let body = expect_error(res, 401, "auth.invalid_credentials").await;
        assert_eq!(body["error"]["message"], "The email or password is incorrect.");
    }
}

#[tokio::test]
async fn profile_get_and_update() {
    let app = TestApp::spawn().await;
    let s = app.register("dave@example.com").await;
    let res = app.get("/api/auth/profile").bearer_auth(&s.access).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["email"], "dave@example.com");
    assert_eq!(body["id"], s.user_id);

    let res = app
        .req(reqwest::Method::PUT, "/api/auth/profile")
        .bearer_auth(&s.access)
        .json(&json!({"display_name": "  David 萤火 "}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["display_name"], "David 萤火");

    let res = app
        .req(reqwest::Method::PUT, "/api/auth/profile")
        .bearer_auth(&s.access)
        .json(&json!({"display_name": "x".repeat(65)}))
        .send()
        .await
        .unwrap();
    expect_error(res, 422, "validation.failed").await;
    let res = app.get("/api/auth/profile").bearer_auth(&s.access).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["display_name"], "David 萤火", "a rejected update wrote nothing");
}

#[tokio::test]
async fn protected_routes_need_a_valid_token() {
    let app = TestApp::spawn().await;
    let s = app.register("erin@example.com").await;
    expect_error(app.get("/api/auth/profile").send().await.unwrap(), 401, "auth.unauthenticated").await;
    expect_error(app.get("/api/auth/profile").bearer_auth("garbage").send().await.unwrap(), 401, "auth.token_invalid")
        .await;
    // A token signed with another secret.
    let mut tampered = s.access.clone();
    tampered.pop();
    tampered.push(if s.access.ends_with('A') { 'B' } else { 'A' });
    expect_error(app.get("/api/auth/profile").bearer_auth(&tampered).send().await.unwrap(), 401, "auth.token_invalid")
        .await;
    // The refresh token is not an access token.
    expect_error(app.get("/api/auth/profile").bearer_auth(&s.refresh).send().await.unwrap(), 401, "auth.token_invalid")
        .await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let s = app.register("frank@example.com").await;
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": s.refresh})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let (access2, refresh2) = (body["access_token"].as_str().unwrap(), body["refresh_token"].as_str().unwrap());
    assert_ne!(refresh2, s.refresh);
    assert_eq!(app.get("/api/auth/profile").bearer_auth(access2).send().await.unwrap().status(), 200);

    // Replaying the spent token revokes the session: the new pair dies too.
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": s.refresh})).send().await.unwrap();
    expect_error(res, 401, "auth.refresh_token_reused").await;
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": refresh2})).send().await.unwrap();
    expect_error(res, 401, "auth.refresh_token_invalid").await;
    let res = app.get("/api/auth/profile").bearer_auth(access2).send().await.unwrap();
    expect_error(res, 401, "auth.token_invalid").await;
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": "rt_unknown"})).send().await.unwrap();
    expect_error(res, 401, "auth.refresh_token_invalid").await;
}

#[tokio::test]
async fn logout_revokes_this_session_or_all() {
    let app = TestApp::spawn().await;
    let a = app.register("gina@example.com").await;
    let b = app.login("gina@example.com", "correct horse battery").await;
    let c = app.login("gina@example.com", "correct horse battery").await;
    let res = app.post("/api/auth/logout").bearer_auth(&a.access).send().await.unwrap();
    assert_eq!(res.status(), 204);
    expect_error(app.get("/api/auth/profile").bearer_auth(&a.access).send().await.unwrap(), 401, "auth.token_invalid")
        .await;
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": a.refresh})).send().await.unwrap();
    expect_error(res, 401, "auth.refresh_token_invalid").await;
    assert_eq!(app.get("/api/auth/profile").bearer_auth(&b.access).send().await.unwrap().status(), 200);

    let res = app.post("/api/auth/logout?all=true").bearer_auth(&b.access).send().await.unwrap();
    assert_eq!(res.status(), 204);
    expect_error(app.get("/api/auth/profile").bearer_auth(&c.access).send().await.unwrap(), 401, "auth.token_invalid")
        .await;
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": c.refresh})).send().await.unwrap();
    expect_error(res, 401, "auth.refresh_token_invalid").await;
}

#[tokio::test]
async fn password_change_revokes_sessions_and_needs_the_current_password() {
    let app = TestApp::spawn().await;
    let s = app.register("hank@example.com").await;
    let other = app.login("hank@example.com", "correct horse battery").await;
    let res = app
        .post("/api/auth/password")
        .bearer_auth(&s.access)
        .json(&json!({"current_password": "not my password", "new_password": "a brand new one"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 403, "auth.wrong_password").await;
    let res = app
        .post("/api/auth/password")
        .bearer_auth(&s.access)
        .json(&json!({"current_password": "correct horse battery", "new_password": "short"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 422, "validation.failed").await;

    let res = app
        .post("/api/auth/password")
        .bearer_auth(&s.access)
        .json(&json!({"current_password": "correct horse battery", "new_password": "a brand new one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fresh: Value = res.json().await.unwrap();
    let fresh_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/auth/profile").bearer_auth(fresh_access).send().await.unwrap().status(), 200);
    expect_error(app.get("/api/auth/profile").bearer_auth(&s.access).send().await.unwrap(), 401, "auth.token_invalid")
        .await;
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": other.refresh})).send().await.unwrap();
    expect_error(res, 401, "auth.refresh_token_invalid").await;
    let res = app
        .post("/api/auth/login")
        .json(&json!({"email": "hank@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 401, "auth.invalid_credentials").await;
    app.login("hank@example.com", "a brand new one").await;
}

#[tokio::test]
async fn preferences_are_per_user_objects() {
    let app = TestApp::spawn().await;
    let a = app.register("ivy@example.com").await;
    let b = app.register("jack@example.com").await;
    let res = app.get("/api/users/me/preferences").bearer_auth(&a.access).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({}));
    let prefs = json!({"theme": "dark", "language": "zh-CN", "tone": {"formal": true}});
    let res = app
        .req(reqwest::Method::PUT, "/api/users/me/preferences")
        .bearer_auth(&a.access)
        .json(&prefs)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app.get("/api/users/me/preferences").bearer_auth(&a.access).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), prefs);
    let res = app.get("/api/users/me/preferences").bearer_auth(&b.access).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({}), "b never sees a's preferences");

    for bad in [json!([1, 2]), json!("text"), json!({"big": "x".repeat(17 * 1024)})] {
        let res = app
            .req(reqwest::Method::PUT, "/api/users/me/preferences")
            .bearer_auth(&a.access)
            .json(&bad)
            .send()
            .await
            .unwrap();
        expect_error(res, 422, "validation.failed").await;
    }
    let res = app.get("/api/users/me/preferences").bearer_auth(&a.access).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), prefs, "rejected writes changed nothing");
}

#[tokio::test]
async fn disabled_user_is_locked_out_within_a_second() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root@example.com").await;
    let s = app.register("kate@example.com").await;
    assert_eq!(app.get("/api/auth/profile").bearer_auth(&s.access).send().await.unwrap().status(), 200);
    let res = app
        .req(reqwest::Method::PUT, &format!("/api/admin/users/{}/status", s.user_id))
        .bearer_auth(&admin.access)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expect_error(
        app.get("/api/auth/profile").bearer_auth(&s.access).send().await.unwrap(),
        403,
        "auth.account_disabled",
    )
    .await;
    let res = app
        .post("/api/auth/login")
        .json(&json!({"email": "kate@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 403, "auth.account_disabled").await;
    let res = app.post("/api/auth/refresh").json(&json!({"refresh_token": s.refresh})).send().await.unwrap();
    expect_error(res, 403, "auth.account_disabled").await;
}

/// Attempts logins until the first 429; returns how many were refused with 401 before it
/// and the 429's Retry-After.
async fn attempts_until_limited(
    app: &TestApp,
    email: impl Fn(usize) -> String,
    ip: impl Fn(usize) -> String,
) -> (usize, u64) {
    for i in 0..10 {
        let res = app
            .post("/api/auth/login")
            .header("x-forwarded-for", ip(i))
            .json(&json!({"email": email(i), "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            let retry_after = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            expect_error(res, 429, "rate_limit.exceeded").await;
            return (i, retry_after);
        }
        expect_error(res, 401, "auth.invalid_credentials").await;
    }
    panic!("never rate limited");
}

#[tokio::test]
async fn login_is_rate_limited_per_account_and_per_address() {
    // 127.0.0.1 is a trusted proxy here, so X-Forwarded-For sets the client address.
    let app = TestApp::spawn_with(|c| {
        c.auth.login_rate_per_sec = 1;
        c.auth.login_burst = 5;
        c.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    // One account from many addresses: the account's burst of 5, then 429. (The budget
    // refills at 1/s, so a slow machine may squeeze in one more.)
    let (refused, retry_after) =
        attempts_until_limited(&app, |_| "leo@example.com".into(), |i| format!("198.51.100.{i}")).await;
    assert!((5..=6).contains(&refused), "{refused}");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // One address trying many accounts: the address's burst of 5, then 429.
    let (refused, _) = attempts_until_limited(&app, |i| format!("user{i}@example.com"), |_| "203.0.113.7".into()).await;
    assert!((5..=6).contains(&refused), "{refused}");
    // Registration spends an address's budget too.
    let mut statuses = Vec::new();
    for i in 0..7 {
        let res = app
            .post("/api/auth/register")
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"email": format!("new{i}@example.com"), "password": "long enough pw"}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[201; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    // Without a trusted proxy the header is ignored: the socket address is the client.
    let plain = TestApp::spawn_with(|c| {
        c.auth.login_rate_per_sec = 1;
        c.auth.login_burst = 5;
    })
    .await;
    let (refused, _) =
        attempts_until_limited(&plain, |i| format!("u{i}@example.com"), |i| format!("192.0.2.{i}")).await;
    assert!((5..=6).contains(&refused), "spoofed X-Forwarded-For must not buy budget: {refused}");
}
