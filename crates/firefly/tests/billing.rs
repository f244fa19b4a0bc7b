//! Credits over HTTP: balance and ledger, administrators' grants and adjustments,
//! redemption codes — once each, whatever the concurrency — and that the balance always
//! equals the ledger's sum.

mod common;

use common::{expect_error, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn balance(app: &TestApp, s: &Session) -> i64 {
    let body: Value =
        app.get("/api/billing/balance").bearer_auth(&s.access).send().await.unwrap().json().await.unwrap();
    body["balance"].as_i64().unwrap()
}

/// The balance equals the sum of the ledger the user can page through.
async fn assert_ledger_matches(app: &TestApp, s: &Session) {
    let mut sum = 0;
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/billing/ledger?limit=2&before={b}"),
            None => "/api/billing/ledger?limit=2".to_owned(),
        };
        let page: Value = app.get(&path).bearer_auth(&s.access).send().await.unwrap().json().await.unwrap();
        sum += page["items"].as_array().unwrap().iter().map(|e| e["amount"].as_i64().unwrap()).sum::<i64>();
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(balance(app, s).await, sum, "balance = sum of the ledger");
}

async fn credit(app: &TestApp, admin: &Session, user_id: i64, body: Value, key: Option<&str>) -> reqwest::Response {
    let mut req = app.post(&format!("/api/admin/users/{user_id}/credits")).bearer_auth(&admin.access).json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn grants_adjustments_and_the_ledger() {
    let app = TestApp::spawn().await;
    let admin = app.admin("cfo@example.com").await;
    let u = app.register("spender@example.com").await;
    assert_eq!(balance(&app, &u).await, 0);

    let res =
        credit(&app, &admin, u.user_id, json!({"kind": "grant", "amount": 1000, "note": "welcome"}), Some("k-1")).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["applied"], true);
    assert_eq!(body["entry"]["balance_after"], 1000);
    assert_eq!(body["entry"]["kind"], "grant");
    // The same Idempotency-Key again: nothing new, the original row back.
    let res = credit(&app, &admin, u.user_id, json!({"kind": "grant", "amount": 1000}), Some("k-1")).await;
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["applied"], false);
    assert_eq!(again["entry"]["id"], body["entry"]["id"]);
    assert_eq!(balance(&app, &u).await, 1000);

    let res =
        credit(&app, &admin, u.user_id, json!({"kind": "adjust", "amount": -1200, "note": "clawback"}), None).await;
    assert_eq!(res.status(), 201);
    assert_eq!(balance(&app, &u).await, -200, "an adjustment may go below zero");

    for bad in [
        json!({"kind": "grant", "amount": -5}),
        json!({"kind": "grant", "amount": 0}),
        json!({"kind": "gift", "amount": 5}),
        json!({"kind": "adjust", "amount": 2_000_000_000_000i64}),
        json!({"kind": "grant", "amount": 5, "note": "x".repeat(501)}),
    ] {
        expect_error(credit(&app, &admin, u.user_id, bad, None).await, 422, "validation.failed").await;
    }
    expect_error(
        credit(&app, &admin, 999_999, json!({"kind": "grant", "amount": 5}), None).await,
        404,
        "resource.not_found",
    )
    .await;
    let page: Value = app.get("/api/billing/ledger").bearer_auth(&u.access).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["adjust", "grant"], "newest first, nothing from the rejected requests");
    assert_ledger_matches(&app, &u).await;
}

#[tokio::test]
async fn only_admins_change_credits_and_users_see_only_their_ledger() {
    let app = TestApp::spawn().await;
    let admin = app.admin("boss2@example.com").await;
    let a = app.register("a-ledger@example.com").await;
    let b = app.register("b-ledger@example.com").await;
    credit(&app, &admin, a.user_id, json!({"kind": "grant", "amount": 7}), None).await;
    expect_error(
        credit(&app, &a, a.user_id, json!({"kind": "grant", "amount": 1_000_000}), None).await,
        403,
        "auth.forbidden",
    )
    .await;
    expect_error(
        app.post("/api/admin/redemption-codes")
            .bearer_auth(&a.access)
            .json(&json!({"name": "x", "amount": 1, "count": 1}))
            .send()
            .await
            .unwrap(),
        403,
        "auth.forbidden",
    )
    .await;
    expect_error(
        app.get("/api/admin/redemption-codes").bearer_auth(&a.access).send().await.unwrap(),
        403,
        "auth.forbidden",
    )
    .await;
    assert_eq!(balance(&app, &a).await, 7);
    assert_eq!(balance(&app, &b).await, 0);
    let page: Value = app.get("/api/billing/ledger").bearer_auth(&b.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"], json!([]), "b sees none of a's rows");
    expect_error(app.get("/api/billing/balance").send().await.unwrap(), 401, "auth.unauthenticated").await;
    expect_error(
        app.get("/api/billing/ledger?limit=0").bearer_auth(&a.access).send().await.unwrap(),
        422,
        "validation.failed",
    )
    .await;
}

async fn create_codes(app: &TestApp, admin: &Session, body: Value) -> (i64, Vec<String>) {
    let res = app.post("/api/admin/redemption-codes").bearer_auth(&admin.access).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let codes = body["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (body["batch"]["id"].as_i64().unwrap(), codes)
}

fn redeem(app: &TestApp, s: &Session, code: &str) -> reqwest::RequestBuilder {
    app.post("/api/billing/redeem").bearer_auth(&s.access).json(&json!({"code": code}))
}

#[tokio::test]
async fn redemption_codes_redeem_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin("codes@example.com").await;
    let u = app.register("lucky@example.com").await;
    let v = app.register("late@example.com").await;
    let (batch_id, codes) = create_codes(&app, &admin, json!({"name": "launch", "amount": 250, "count": 3})).await;
    assert_eq!(codes.len(), 3);
    assert!(codes.iter().all(|c| c.starts_with("FF-") && c.len() == 26), "{codes:?}");

    let res = redeem(&app, &u, &codes[0].to_lowercase()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["credited"].as_i64(), body["balance"].as_i64()), (Some(250), Some(250)));
    assert_eq!(body["entry"]["kind"], "redeem");
    expect_error(redeem(&app, &u, &codes[0]).send().await.unwrap(), 409, "billing.code_redeemed").await;
    expect_error(redeem(&app, &v, &codes[0]).send().await.unwrap(), 409, "billing.code_redeemed").await;
    expect_error(redeem(&app, &v, "FF-00000-00000-00000-00000").send().await.unwrap(), 404, "billing.code_invalid")
        .await;
    expect_error(redeem(&app, &v, "not a code").send().await.unwrap(), 422, "validation.failed").await;
    assert_eq!(balance(&app, &v).await, 0);

    let list: Value =
        app.get("/api/admin/redemption-codes").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], batch_id);
    assert_eq!((list["items"][0]["count"].as_i64(), list["items"][0]["redeemed"].as_i64()), (Some(3), Some(1)));
    assert!(!list.to_string().contains(&codes[1]), "codes are never shown again");

    for bad in [
        json!({"name": "x", "amount": 0, "count": 1}),
        json!({"name": "x", "amount": 1, "count": 0}),
        json!({"name": "x", "amount": 1, "count": 10_001}),
        json!({"name": "", "amount": 1, "count": 1}),
        json!({"name": "x", "amount": 1, "count": 1, "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let res = app.post("/api/admin/redemption-codes").bearer_auth(&admin.access).json(&bad).send().await.unwrap();
        expect_error(res, 422, "validation.failed").await;
    }
    assert_ledger_matches(&app, &u).await;
}

#[tokio::test]
async fn expired_codes_refuse() {
    let app = TestApp::spawn().await;
    let admin = app.admin("exp@example.com").await;
    let u = app.register("tardy@example.com").await;
    let soon = {
        let at = std::time::SystemTime::now() + std::time::Duration::from_millis(1200);
        firefly_server::accounts::rfc3339(at.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
    };
    let (_, codes) =
        create_codes(&app, &admin, json!({"name": "flash", "amount": 5, "count": 1, "expires_at": soon})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1400)).await;
    expect_error(redeem(&app, &u, &codes[0]).send().await.unwrap(), 409, "billing.code_expired").await;
    assert_eq!(balance(&app, &u).await, 0);
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_credit_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin("race@example.com").await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.register(&format!("racer{i}@example.com")).await);
    }
    let (_, codes) = create_codes(&app, &admin, json!({"name": "race", "amount": 100, "count": 1})).await;
    let attempts = users.iter().flat_map(|u| [u, u]).map(|u| redeem(&app, u, &codes[0]).send());
    let statuses: Vec<u16> =
        futures::future::join_all(attempts).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    let mut total = 0;
    for u in &users {
        total += balance(&app, u).await;
        assert_ledger_matches(&app, u).await;
    }
    assert_eq!(total, 100);
}

#[tokio::test]
async fn guessing_codes_is_rate_limited() {
    let app = TestApp::spawn_with(|c| {
        c.billing.redeem_rate_per_minute = 10;
        c.billing.redeem_burst = 5;
    })
    .await;
    let u = app.register("guesser@example.com").await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let res = redeem(&app, &u, &format!("FF-00000-00000-00000-0000{i}")).send().await.unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(&statuses[..5], &[404; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn concurrent_admin_grants_with_one_key_apply_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin("twice@example.com").await;
    let u = app.register("once@example.com").await;
    let sends =
        (0..6).map(|_| credit(&app, &admin, u.user_id, json!({"kind": "grant", "amount": 40}), Some("double-click")));
    let statuses: Vec<u16> = futures::future::join_all(sends).await.into_iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(balance(&app, &u).await, 40);
}

#[tokio::test]
async fn new_accounts_start_with_the_configured_grant() {
    let app = TestApp::spawn_with(|c| c.billing.signup_grant = 300).await;
    let u = app.register("newbie@example.com").await;
    assert_eq!(balance(&app, &u).await, 300);
    let page: Value = app.get("/api/billing/ledger").bearer_auth(&u.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"][0]["kind"], "grant");
    assert_eq!(page["items"][0]["reference"], "signup");
    assert_ledger_matches(&app, &u).await;
}

#[tokio::test]
async fn model_prices_are_administered() {
    let app = TestApp::spawn().await;
    let admin = app.admin("prices@example.com").await;
    let user = app.register("shopper@example.com").await;
    let put = |who: &Session, model: &str, body: Value| {
        app.req(Method::PUT, &format!("/api/admin/models/{model}")).bearer_auth(who.access.clone()).json(&body)
    };
    let res =
        put(&admin, "gpt-4o", json!({"input_per_mtok": 2500, "output_per_mtok": 10000, "cached_input_per_mtok": 1250}))
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 200);
    // A name with a slash travels percent-encoded.
    let res =
        put(&admin, "qwen%2Fqwen-max", json!({"input_per_mtok": 1600, "output_per_mtok": 6400})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["model"], "qwen/qwen-max");
    let list: Value =
        app.get("/api/admin/models").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    let models: Vec<&str> = list["items"].as_array().unwrap().iter().map(|p| p["model"].as_str().unwrap()).collect();
    assert_eq!(models, vec!["gpt-4o", "qwen/qwen-max"]);
    assert_eq!(list["items"][1]["cached_input_per_mtok"], Value::Null);

    let res = put(&admin, "gpt-4o", json!({"input_per_mtok": -1, "output_per_mtok": 1})).send().await.unwrap();
    expect_error(res, 422, "validation.failed").await;
    let res = put(&admin, "gpt-4o", json!({"input_per_mtok": 1})).send().await.unwrap();
    expect_error(res, 422, "validation.failed").await;
    let res = put(&user, "gpt-4o", json!({"input_per_mtok": 0, "output_per_mtok": 0})).send().await.unwrap();
    expect_error(res, 403, "auth.forbidden").await;
    let list: Value =
        app.get("/api/admin/models").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["input_per_mtok"], 2500, "rejected writes changed nothing");

    let del =
        |model: &str| app.req(Method::DELETE, &format!("/api/admin/models/{model}")).bearer_auth(admin.access.clone());
    assert_eq!(del("gpt-4o").send().await.unwrap().status(), 204);
    expect_error(del("gpt-4o").send().await.unwrap(), 404, "resource.not_found").await;
}

#[tokio::test]
async fn groups_and_memberships() {
    let app = TestApp::spawn().await;
    let admin = app.admin("groups@example.com").await;
    let user = app.register("member@example.com").await;
    let res = app
        .post("/api/admin/groups")
        .bearer_auth(&admin.access)
        .json(&json!({"name": "vip", "multiplier_bp": 8000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let vip: Value = res.json().await.unwrap();
    let vip_id = vip["id"].as_i64().unwrap();
    let res = app
        .post("/api/admin/groups")
        .bearer_auth(&admin.access)
        .json(&json!({"name": "vip", "multiplier_bp": 1}))
        .send()
        .await
        .unwrap();
    expect_error(res, 409, "resource.conflict").await;
    let res = app
        .post("/api/admin/groups")
        .bearer_auth(&admin.access)
        .json(&json!({"name": "x", "multiplier_bp": -1}))
        .send()
        .await
        .unwrap();
    expect_error(res, 422, "validation.failed").await;

    let set = |body: Value| {
        app.req(Method::PUT, &format!("/api/admin/users/{}/group", user.user_id))
            .bearer_auth(admin.access.clone())
            .json(&body)
    };
    assert_eq!(set(json!({"group_id": vip_id})).send().await.unwrap().status(), 204);
    expect_error(set(json!({"group_id": vip_id + 100})).send().await.unwrap(), 404, "resource.not_found").await;
    let list: Value =
        app.get("/api/admin/groups").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["members"], 1);

    let res = app
        .req(Method::PATCH, &format!("/api/admin/groups/{vip_id}"))
        .bearer_auth(&admin.access)
        .json(&json!({"multiplier_bp": 9000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["multiplier_bp"], 9000);
    assert_eq!(set(json!({"group_id": null})).send().await.unwrap().status(), 204);
    let list: Value =
        app.get("/api/admin/groups").bearer_auth(&admin.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["members"], 0);
    let res = app
        .req(Method::DELETE, &format!("/api/admin/groups/{vip_id}"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app.get("/api/admin/groups").bearer_auth(&user.access).send().await.unwrap();
    expect_error(res, 403, "auth.forbidden").await;
}
