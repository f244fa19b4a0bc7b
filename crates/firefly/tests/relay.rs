//! The AI relay end to end: the real server on port 0, a fresh database, and the mock
//! upstream speaking OpenAI's wire format. Billing is checked to the credit against the
//! mock's documented usage formula.

mod common;

use common::{expect_error, Session, TestApp};
use firefly_mock::{MockConfig, MockUpstream};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// Prices that make costs easy to read: 1 credit per input token, 2 per output token.
const PRICE: (i64, i64) = (1_000_000, 2_000_000);
const MODEL: &str = "gpt-4o-mini";
const EMBED: &str = "text-embedding-3-small";

struct Relay {
    app: TestApp,
    mock: MockUpstream,
    admin: Session,
    user: Session,
    key: String,
    key_id: i64,
}

impl Relay {
    async fn start() -> Relay {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut firefly_core::config::Config)) -> Relay {
        let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
        let app = TestApp::spawn_with(|c| {
            c.relay.probe_interval_secs = 1;
            adjust(c);
        })
        .await;
        let admin = app.admin("admin@example.com").await;
        let user = app.register("user@example.com").await;
        let relay = Relay { app, mock, admin, user, key: String::new(), key_id: 0 };
        relay.channel(json!({"name": "main", "keys": ["sk-upstream-good"], "models": [MODEL, EMBED]})).await;
        relay.price(MODEL, PRICE.0, PRICE.1).await;
        relay.price(EMBED, PRICE.0, 0).await;
        relay.grant(relay.user.user_id, 1_000_000).await;
        let (key_id, key) = relay.app.create_key(&relay.user, json!({"name": "test"})).await;
        Relay { key, key_id, ..relay }
    }

    async fn channel(&self, mut body: Value) -> i64 {
        body["provider"] = json!("openai");
        body["base_url"] = json!(self.mock.base_url());
        let res =
            self.app.post("/api/admin/channels").bearer_auth(&self.admin.access).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    async fn price(&self, model: &str, input: i64, output: i64) {
        let res = self
            .app
            .req(reqwest::Method::PUT, &format!("/api/admin/models/{model}"))
            .bearer_auth(&self.admin.access)
            .json(&json!({"input_per_mtok": input, "output_per_mtok": output}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    async fn grant(&self, user_id: i64, amount: i64) {
        let res = self
            .app
            .post(&format!("/api/admin/users/{user_id}/credits"))
            .bearer_auth(&self.admin.access)
            .json(&json!({"kind": "grant", "amount": amount}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    /// An administrator's request, answered with JSON.
    async fn admin_json(&self, method: reqwest::Method, path: &str) -> Value {
        self.app.req(method, path).bearer_auth(&self.admin.access).send().await.unwrap().json().await.unwrap()
    }

    fn chat(&self, body: Value) -> reqwest::RequestBuilder {
        self.app.post("/v1/chat/completions").bearer_auth(&self.key).json(&body)
    }

    async fn balance(&self, session: &Session) -> i64 {
        let res = self.app.get("/api/billing/balance").bearer_auth(&session.access).send().await.unwrap();
        res.json::<Value>().await.unwrap()["balance"].as_i64().unwrap()
    }

    /// The user's call log, waiting until it has `n` rows (the writer is asynchronous).
    async fn logs(&self, session: &Session, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let res = self.app.get("/api/usage/logs?limit=200").bearer_auth(&session.access).send().await.unwrap();
            let items = res.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone();
            if items.len() >= n {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the call log never reached {n} rows");
    }

    async fn ledger_sum_matches(&self, user_id: i64) {
        let store = &self.app.state.store;
        assert_eq!(store.ledger_sum(user_id).await.unwrap(), store.balance(user_id).await.unwrap());
    }
}

fn cost(prompt: i64, completion: i64) -> i64 {
    prompt * PRICE.0 / 1_000_000 + completion * PRICE.1 / 1_000_000
}

/// The mock's prompt tokens for a single message of `text`.
fn prompt_tokens(text: &str) -> i64 {
    (text.chars().count() as i64 / 4).max(1)
}

#[tokio::test]
async fn chat_is_relayed_and_billed_exactly_once_with_a_log_row() {
    let r = Relay::start().await;
    let before = r.balance(&r.user).await;
    let text = "Hello there, how are you today?";
    let res = r.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": text}]})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Firefly mock says hello from the local upstream.");
    let prompt = prompt_tokens(text);
    assert_eq!(body["usage"]["prompt_tokens"], prompt);
    assert_eq!(body["usage"]["completion_tokens"], 8);

    let logs = r.logs(&r.user, 1).await;
    let row = &logs[0];
    let expected = cost(prompt, 8);
    assert_eq!(row["request_id"], request_id.as_str());
    assert_eq!((row["input_tokens"].as_i64(), row["output_tokens"].as_i64()), (Some(prompt), Some(8)));
    assert_eq!(row["credits"], expected);
    assert_eq!(row["status"], 200);
    assert_eq!(row["model"], MODEL);
    assert_eq!(row["api_key_id"], r.key_id);
    assert!(row.get("channel_id").is_none(), "users do not see channels: {row}");
    assert!(row["first_token_ms"].as_i64().is_some());
    assert_eq!(r.balance(&r.user).await, before - expected);

    // The ledger row names the request; the key counts what it spent.
    let ledger: Value =
        r.app.get("/api/billing/ledger").bearer_auth(&r.user.access).send().await.unwrap().json().await.unwrap();
    let charge = &ledger["items"][0];
    assert_eq!((charge["kind"].as_str(), charge["amount"].as_i64()), (Some("charge"), Some(-expected)));
    assert_eq!(charge["reference"], request_id.as_str());
    let keys: Value = r.app.get("/api/keys").bearer_auth(&r.user.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["items"][0]["credits_used"], expected);

    // Statistics come from the rollups.
    let stats: Value =
        r.app.get("/api/usage/stats").bearer_auth(&r.user.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["total"]["requests"], 1);
    assert_eq!(stats["total"]["credits"], expected);
    assert_eq!(stats["models"][0]["model"], MODEL);
    assert_eq!(stats["days"].as_array().unwrap().len(), 30);
    r.ledger_sum_matches(r.user.user_id).await;
    assert_eq!(r.mock.chat_requests(), 1);
}

/// A stream as the client sees it, with the mock's ids and timestamps masked.
async fn transcript(res: reqwest::Response) -> Vec<Value> {
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {event:?}"));
            if data == "[DONE]" {
                return json!("[DONE]");
            }
            let mut v: Value = serde_json::from_str(data).unwrap();
            v["id"] = json!("<id>");
            v["created"] = json!(0);
            v
        })
        .collect()
}

#[tokio::test]
async fn streams_are_passed_through_and_usage_is_hidden_unless_asked() {
    let r = Relay::start().await;
    let messages = json!([{"role": "user", "content": "Stream me a short answer please"}]);
    let plain =
        r.chat(json!({"model": MODEL, "messages": messages, "stream": true, "max_tokens": 3})).send().await.unwrap();
    insta::assert_json_snapshot!("stream_without_usage", transcript(plain).await);
    let with_usage = r
        .chat(json!({"model": MODEL, "messages": messages, "stream": true, "max_tokens": 3,
                     "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("stream_with_usage", transcript(with_usage).await);

    // Both were billed from the upstream's usage, which the relay asked for either way.
    let logs = r.logs(&r.user, 2).await;
    let prompt = prompt_tokens("Stream me a short answer please");
    for row in &logs {
        assert_eq!(row["stream"], true);
        assert_eq!((row["input_tokens"].as_i64(), row["output_tokens"].as_i64()), (Some(prompt), Some(3)));
        assert_eq!(row["credits"], cost(prompt, 3));
    }
    let sent = r.mock.last_request_body().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    r.ledger_sum_matches(r.user.user_id).await;
}

#[tokio::test]
async fn embeddings_and_models() {
    let r = Relay::start().await;
    let res = r
        .app
        .post("/v1/embeddings")
        .bearer_auth(&r.key)
        .json(&json!({"model": EMBED, "input": ["first text here", "second"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let tokens = body["usage"]["prompt_tokens"].as_i64().unwrap();
    let logs = r.logs(&r.user, 1).await;
    assert_eq!(logs[0]["endpoint"], "embeddings");
    assert_eq!(logs[0]["credits"], tokens);

    // Models: served, priced, and on the key's list when it has one.
    r.channel(json!({"name": "extra", "keys": ["k"], "models": ["unpriced-model"]})).await;
    let list: Value = r.app.get("/v1/models").bearer_auth(&r.key).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![MODEL, EMBED]);
    assert_eq!(list["object"], "list");
    let (_, narrow) = r.app.create_key(&r.user, json!({"name": "narrow", "models": [EMBED]})).await;
    let list: Value = r.app.get("/v1/models").bearer_auth(&narrow).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let one = r.app.get(&format!("/v1/models/{EMBED}")).bearer_auth(&narrow).send().await.unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let other = r.app.get(&format!("/v1/models/{MODEL}")).bearer_auth(&narrow).send().await.unwrap();
    expect_error(other, 404, "relay.model_not_found").await;
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_4xx_and_cost_nothing() {
    let r = Relay::start().await;
    let before = r.balance(&r.user).await;
    let send = |body: &'static str| {
        r.app
            .post("/v1/chat/completions")
            .bearer_auth(&r.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: [(&str, u16, &str, Value); 6] = [
        ("{not json", 400, "relay.invalid_request", Value::Null),
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, 400, "relay.invalid_request", json!("model")),
        (r#"{"model":"gpt-4o-mini","messages":[]}"#, 400, "relay.invalid_request", json!("messages")),
        (
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            400,
            "relay.invalid_request",
            json!("max_tokens"),
        ),
        (
            r#"{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}"#,
            404,
            "relay.model_not_found",
            Value::Null,
        ),
        (r#"[1,2]"#, 400, "relay.invalid_request", Value::Null),
    ];
    for (body, status, code, param) in cases {
        let err = expect_error(send(body).await.unwrap(), status, code).await;
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
        let kind = if status == 404 { "not_found_error" } else { "invalid_request_error" };
        assert_eq!(err["error"]["type"], kind, "{body}");
    }
    // A served model without a price is refused, never served free.
    r.channel(json!({"name": "extra", "keys": ["k"], "models": ["unpriced-model"]})).await;
    let res = r
        .chat(json!({"model": "unpriced-model", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "relay.model_unpriced").await;
    // A key limited to other models.
    let (_, narrow) = r.app.create_key(&r.user, json!({"name": "narrow", "models": [EMBED]})).await;
    let res = r
        .app
        .post("/v1/chat/completions")
        .bearer_auth(&narrow)
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    let err = expect_error(res, 403, "api_key.model_denied").await;
    assert_eq!(err["error"]["type"], "permission_error");
    // No key, a wrong key.
    let res = r.app.post("/v1/chat/completions").json(&json!({})).send().await.unwrap();
    expect_error(res, 401, "auth.unauthenticated").await;
    let res = r.app.post("/v1/chat/completions").bearer_auth("sk-ff-nope").json(&json!({})).send().await.unwrap();
    let err = expect_error(res, 401, "api_key.invalid").await;
    assert_eq!(err["error"]["type"], "authentication_error");
    // An upstream 400 is passed through and never retried.
    let res = r
        .chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                     "metadata": {"x-mock-status": "400"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(r.mock.chat_requests(), 1, "a 400 is the request's fault: not retried");

    assert_eq!(r.balance(&r.user).await, before);
    r.ledger_sum_matches(r.user.user_id).await;
}

#[tokio::test]
async fn two_hundred_parallel_requests_never_spend_more_than_the_balance() {
    let r = Relay::start().await;
    // Input is free and output is capped at 8 tokens, which the mock produces exactly:
    // the reservation equals the cost, 16 credits, and 800 credits cover exactly 50.
    r.price(MODEL, 0, PRICE.1).await;
    let poor = r.app.register("poor@example.com").await;
    r.grant(poor.user_id, 800).await;
    let (_, key) = r.app.create_key(&poor, json!({"name": "k"})).await;
    let body = json!({"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let requests = (0..200).map(|_| {
        let req = r.app.post("/v1/chat/completions").bearer_auth(&key).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(ok + refused, 200, "only successes and 402s: {statuses:?}");
    assert_eq!(ok, 50, "800 credits pay for exactly 50 requests of 16");

    r.logs(&poor, 50).await;
    assert_eq!(r.balance(&poor).await, 0);
    r.ledger_sum_matches(poor.user_id).await;
    assert_eq!(r.mock.chat_requests(), 50, "refused requests never reached the upstream");
    // Nothing is left held.
    assert_eq!(r.app.state.relay.credits.held(poor.user_id).await.unwrap(), 0);
}

#[tokio::test]
async fn two_instances_sharing_a_database_never_spend_more_than_the_balance() {
    // Reservations in the database: what lets several instances share one balance.
    let r = Relay::start_with(|c| c.billing.credit_backend = firefly_core::config::CreditBackend::Database).await;
    let (url, master_key) = (r.app.state.config.database_url(), r.app.state.config.security.master_key.clone());
    let twin = TestApp::spawn_with(|c| {
        c.database.url = Some(url);
        c.security.master_key = master_key;
        c.billing.credit_backend = firefly_core::config::CreditBackend::Database;
    })
    .await;
    r.price(MODEL, 0, PRICE.1).await;
    let poor = r.app.register("poor@example.com").await;
    r.grant(poor.user_id, 800).await;
    let (_, key) = r.app.create_key(&poor, json!({"name": "k"})).await;
    let body = json!({"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let requests = (0..200).map(|i| {
        let app = if i % 2 == 0 { &r.app } else { &twin };
        let req = app.post("/v1/chat/completions").bearer_auth(&key).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok + statuses.iter().filter(|s| **s == 402).count(), 200, "{statuses:?}");
    assert_eq!(ok, 50, "two instances together serve exactly what 800 credits pay for");
    r.logs(&poor, 50).await;
    assert_eq!(r.balance(&poor).await, 0);
    r.ledger_sum_matches(poor.user_id).await;
    assert_eq!(r.app.state.relay.credits.held(poor.user_id).await.unwrap(), 0, "every hold was released");
}

#[tokio::test]
async fn failover_to_the_next_channel_and_a_clear_502_when_all_fail() {
    let r = Relay::start().await;
    // A higher-priority channel whose upstream fails with 500.
    let broken = r.channel(json!({"name": "broken", "keys": ["sk-broken"], "models": [MODEL], "priority": 10})).await;
    r.mock.set_fail_key("sk-broken", 500);
    let res = r.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(r.mock.chat_requests(), 2, "the broken channel, then the good one");
    let logs = r.logs(&r.user, 1).await;
    assert_eq!(logs[0]["status"], 200);

    // Every channel failing: 502 with a code, nothing charged.
    r.mock.set_fail_key("sk-upstream-good", 503);
    let before = r.balance(&r.user).await;
    let res = r.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap();
    let err = expect_error(res, 502, "relay.upstream_failed").await;
    assert_eq!(err["error"]["type"], "server_error");
    let logs = r.logs(&r.user, 2).await;
    assert_eq!((logs[0]["status"].as_i64(), logs[0]["credits"].as_i64()), (Some(502), Some(0)));
    assert_eq!(r.balance(&r.user).await, before);

    // The admin's log shows which channel answered.
    let all: Value = r
        .app
        .get(&format!("/api/admin/usage/logs?user_id={}", r.user.user_id))
        .bearer_auth(&r.admin.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(all["items"][1]["channel_id"].as_i64().is_some_and(|id| id != broken), "{all}");
    let forbidden = r.app.get("/api/admin/usage/logs").bearer_auth(&r.user.access).send().await.unwrap();
    expect_error(forbidden, 403, "auth.forbidden").await;
}

#[tokio::test]
async fn a_refused_channel_key_disables_the_channel_until_a_probe_succeeds() {
    let r = Relay::start().await;
    let bad = r.channel(json!({"name": "revoked", "keys": ["sk-revoked"], "models": [MODEL], "priority": 10})).await;
    r.mock.set_fail_key("sk-revoked", 401);
    let res = r.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "served by the other channel");
    let channel: Value = r.admin_json(reqwest::Method::GET, &format!("/api/admin/channels/{bad}")).await;
    assert_eq!(channel["status"], "auto_disabled", "{channel}");
    // The admin's probe reports the failure.
    let probe: Value = r.admin_json(reqwest::Method::POST, &format!("/api/admin/channels/{bad}/test")).await;
    assert_eq!((probe["ok"].as_bool(), probe["status"].as_u64()), (Some(false), Some(401)), "{probe}");

    // The provider account is fixed: the periodic probe turns the channel back on.
    r.mock.clear_fail_key("sk-revoked");
    let mut status = Value::Null;
    for _ in 0..100 {
        let c: Value = r.admin_json(reqwest::Method::GET, &format!("/api/admin/channels/{bad}")).await;
        status = c["status"].clone();
        if status == "enabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "enabled");
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_pays_for_what_was_produced() {
    let r = Relay::start().await;
    let res = r
        .chat(json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "long answer"}],
                     "metadata": {"x-mock-chunks": "20", "x-mock-chunk-delay-ms": "20"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);

    let logs = r.logs(&r.user, 1).await;
    let row = &logs[0];
    assert_eq!(row["status"], 499, "{row}");
    assert_eq!(row["output_tokens"], 20, "the upstream was read to the end: {row}");
    assert_eq!(row["credits"], cost(prompt_tokens("long answer"), 20));
    r.ledger_sum_matches(r.user.user_id).await;
}

#[tokio::test]
async fn an_upstream_that_breaks_mid_stream_ends_the_stream_with_an_error_event() {
    let r = Relay::start().await;
    let res = r
        .chat(json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hello"}],
                     "metadata": {"x-mock-disconnect-after": "3"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.last().unwrap().contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"));
    let logs = r.logs(&r.user, 1).await;
    assert_eq!(logs[0]["status"], 502);
    // No usage came: the three content events are counted as about one token each.
    assert_eq!(logs[0]["output_tokens"], 3, "{}", logs[0]);
}

#[tokio::test]
async fn revoked_limited_and_exhausted_keys_are_refused() {
    let r = Relay::start().await;
    let body = json!({"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    // A key with a credit limit below one request's reservation.
    let (_, small) = r.app.create_key(&r.user, json!({"name": "small", "credit_limit": 10})).await;
    let res = r.app.post("/v1/chat/completions").bearer_auth(&small).json(&body).send().await.unwrap();
    expect_error(res, 402, "api_key.credit_limit_reached").await;
    // A rate-limited key: 2 a minute.
    let (_, slow) = r.app.create_key(&r.user, json!({"name": "slow", "rpm_limit": 2})).await;
    for _ in 0..2 {
        let res = r.app.post("/v1/chat/completions").bearer_auth(&slow).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = r.app.post("/v1/chat/completions").bearer_auth(&slow).json(&body).send().await.unwrap();
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    let err = expect_error(res, 429, "rate_limit.exceeded").await;
    assert_eq!(err["error"]["type"], "rate_limit_error");
    // A revoked key stops at once.
    let res = r
        .app
        .req(reqwest::Method::DELETE, &format!("/api/keys/{}", r.key_id))
        .bearer_auth(&r.user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = r.chat(body.clone()).send().await.unwrap();
    expect_error(res, 401, "api_key.invalid").await;
    // A user with no credits.
    let broke = r.app.register("broke@example.com").await;
    let (_, key) = r.app.create_key(&broke, json!({"name": "k"})).await;
    let res = r.app.post("/v1/chat/completions").bearer_auth(&key).json(&body).send().await.unwrap();
    let err = expect_error(res, 402, "billing.insufficient_balance").await;
    assert_eq!(err["error"]["type"], "insufficient_quota");
}

#[tokio::test]
async fn a_repeated_client_request_id_is_billed_every_time() {
    let r = Relay::start().await;
    let before = r.balance(&r.user).await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "same id"}]});
    for _ in 0..2 {
        let res = r.chat(body.clone()).header("x-request-id", "client-chosen-1").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-request-id"], "client-chosen-1", "the client's id is echoed");
    }
    let logs = r.logs(&r.user, 2).await;
    for row in &logs {
        assert!(row["request_id"].as_str().unwrap().starts_with("client-chosen-1:"), "{row}");
    }
    assert_ne!(logs[0]["request_id"], logs[1]["request_id"]);
    assert_eq!(r.balance(&r.user).await, before - 2 * cost(prompt_tokens("same id"), 8));
    r.ledger_sum_matches(r.user.user_id).await;
}

#[tokio::test]
async fn a_client_that_leaves_before_a_non_stream_answer_is_billed_and_nothing_stays_held() {
    let r = Relay::start().await;
    let request = r.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "slow one"}],
                                "metadata": {"x-mock-latency-ms": "300"}}));
    // The client gives up after 50 ms; the upstream answers at 300 ms.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), request.send()).await;
    assert!(gave_up.is_err(), "the answer came before the client left");
    let held = r.app.state.relay.credits.held(r.user.user_id).await.unwrap();
    assert!(held > 0, "the request holds credits while it runs: {held}");

    let logs = r.logs(&r.user, 1).await;
    assert_eq!(logs[0]["status"], 499, "{}", logs[0]);
    assert_eq!(logs[0]["credits"], cost(prompt_tokens("slow one"), 8), "what was produced is billed");
    assert_eq!(r.app.state.relay.credits.held(r.user.user_id).await.unwrap(), 0);
    r.ledger_sum_matches(r.user.user_id).await;
}
