//! The HTTP test harness: the real server on port 0 with a fresh database.
//!
//! `TEST_DATABASE` picks the backend: `sqlite` (default), `mysql` (needs
//! `TEST_MYSQL_URL`) or `postgres` (needs `TEST_POSTGRES_URL`); each test gets its own
//! database. CI runs the whole suite once per backend.
#![allow(dead_code)]

use firefly_core::config::{Config, DatabaseUrl, Secret};
use firefly_server::{AppState, Server};
use firefly_store::Role;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub fn backend() -> String {
    std::env::var("TEST_DATABASE").unwrap_or_else(|_| "sqlite".into())
}

async fn database_url(dir: &std::path::Path) -> String {
    match backend().as_str() {
        "sqlite" => format!("sqlite://{}", dir.join("test.db").display()),
        "mysql" => {
            let admin = std::env::var("TEST_MYSQL_URL").expect("TEST_DATABASE=mysql needs TEST_MYSQL_URL");
            firefly_store_mysql::testing::fresh_database(&admin).await.expect("creating a MySQL test database")
        }
        "postgres" => {
            let admin = std::env::var("TEST_POSTGRES_URL").expect("TEST_DATABASE=postgres needs TEST_POSTGRES_URL");
            firefly_store_postgres::testing::fresh_database(&admin).await.expect("creating a PostgreSQL test database")
        }
        other => panic!("TEST_DATABASE={other}: expected sqlite, mysql or postgres"),
    }
}

/// A configuration for tests: port 0, a fresh database, cheap argon2 (the cost is not
/// what these tests examine), a fixed JWT secret.
pub async fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.database.url = Some(DatabaseUrl::new(database_url(dir).await));
    config.database.max_connections = 5;
    config.auth.jwt_secret = Secret::new("test-secret-test-secret-test-secret-0123456789");
    config.security.master_key = Secret::new(firefly_core::crypto::MasterKey::generate_base64());
    config.auth.argon2_memory_kib = 1024;
    config.auth.argon2_iterations = 1;
    // Tests sign up and log in many users from 127.0.0.1; the limiter has its own test.
    config.auth.login_rate_per_sec = 10_000;
    config.auth.login_burst = 10_000;
    config.billing.redeem_rate_per_minute = 10_000;
    config.billing.redeem_burst = 10_000;
    config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path()).await;
        adjust(&mut config);
        let store = firefly::open_store(&config).await.expect("opening the store");
        let server = Server::build(config, store).await.expect("building the server");
        let base = format!("http://{}", server.local_addr());
        let state = server.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            state,
            stop: Some(stop),
            server: Some(handle),
            _dir: dir,
        }
    }

    /// Signals shutdown; the server finishes in-flight requests.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }

    /// Registers a user and returns its session.
    pub async fn register(&self, email: &str) -> Session {
        let res = self
            .post("/api/auth/register")
            .json(
                &json!({"email": email, "password": "correct horse battery", "display_name": email.split('@').next()}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "registering {email}");
        Session::from_body(res.json().await.unwrap())
    }

    /// Creates an administrator directly (as `firefly admin create` does) and logs in.
    pub async fn admin(&self, email: &str) -> Session {
        firefly_server::accounts::create_user(&self.state, email, "admin password 1", None, Role::Admin).await.unwrap();
        self.login(email, "admin password 1").await
    }

    pub async fn login(&self, email: &str, password: &str) -> Session {
        let res =
            self.post("/api/auth/login").json(&json!({"email": email, "password": password})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "logging in {email}");
        Session::from_body(res.json().await.unwrap())
    }

    /// Creates an API key for `session` and returns (id, full key).
    pub async fn create_key(&self, session: &Session, body: Value) -> (i64, String) {
        let res = self.post("/api/keys").bearer_auth(&session.access).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        (body["id"].as_i64().unwrap(), body["key"].as_str().unwrap().to_owned())
    }

    /// Once the usage writer has settled every request (with database holds, a hold is
    /// released in the transaction that writes its charge), nothing stays reserved for
    /// `user_id` and the balance is the ledger's sum.
    pub async fn assert_settled(&self, user_id: i64) {
        let store = &self.state.store;
        let mut held = None;
        for _ in 0..400 {
            held = self.state.relay.credits.held(user_id).await.ok();
            if held == Some(0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(held, Some(0), "nothing stays reserved");
        assert_eq!(store.ledger_sum(user_id).await.unwrap(), store.balance(user_id).await.unwrap());
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: i64,
}

impl Session {
    pub fn from_body(body: Value) -> Session {
        Session {
            access: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
            user_id: body["user"]["id"].as_i64().expect("user.id"),
        }
    }
}

/// Asserts an error response: status, code, the shape, and the request id header matching the body.
pub async fn expect_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status for {code}");
    let header_id = res.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_owned();
    let body: Value = res.json().await.expect("an error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["error"]["request_id"], header_id.as_str(), "{body}");
    body
}
