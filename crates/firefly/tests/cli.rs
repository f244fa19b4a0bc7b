//! Binary-level tests: the real `firefly` executable run as a child process, each in its
//! own temporary directory (working directory and data directory) with an environment
//! cleared of every `FIREFLY_*` variable. They check what an operator sees: the
//! configuration layers and their errors, first start on the embedded SQLite default,
//! migrations, `admin create`, the bootstrap administrator, graceful shutdown on SIGTERM
//! and the request log.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_firefly");
/// How long a server gets to start listening and a command to finish: generous, since the
/// machine may be busy with other builds. Nothing here measures speed.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// argon2 at the binary's default cost is slow in a debug build; tests that do not look at
/// the cost use a cheap one.
const CHEAP_ARGON2: [(&str, &str); 2] =
    [("FIREFLY_AUTH__ARGON2_MEMORY_KIB", "1024"), ("FIREFLY_AUTH__ARGON2_ITERATIONS", "1")];
const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// `firefly` run in `dir` with only PATH and HOME from the caller's environment.
fn firefly(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_clear().stdin(Stdio::null());
    for var in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd
}

/// `firefly` in `dir` with a cheap argon2 cost.
fn firefly_cheap(dir: &Path) -> Command {
    let mut cmd = firefly(dir);
    cmd.envs(CHEAP_ARGON2);
    cmd
}

/// Kills (and reaps) the child when dropped, so no test leaves a process behind, even
/// when it fails half-way.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn read_all(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// A finished command.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "firefly failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit whose standard error contains each of `needles`.
    fn assert_failure_naming(&self, needles: &[&str]) {
        assert!(
            !self.status.success(),
            "firefly succeeded but should have failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        for needle in needles {
            assert!(self.stderr.contains(needle), "stderr does not mention {needle:?}:\n{}", self.stderr);
        }
    }
}

/// Runs `cmd` to the end, feeding `stdin` (then end of file) when given.
fn run(mut cmd: Command, stdin: Option<&str>) -> Finished {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard(cmd.spawn().expect("starting firefly"));
    let stdout = read_all(child.0.stdout.take());
    let stderr = read_all(child.0.stderr.take());
    if let (Some(input), Some(mut pipe)) = (stdin, child.0.stdin.take()) {
        // The process may exit before reading (a bad configuration): a broken pipe is fine.
        let _ = pipe.write_all(input.as_bytes());
        // Dropping the pipe closes it: end of file.
    }
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waiting for firefly") {
            break status;
        }
        assert!(Instant::now() < deadline, "firefly did not finish within {RUN_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `firefly serve` as a child process. Its standard error (the JSON log) is collected
/// line by line; the address comes from its `firefly listening` line, so `--listen
/// 127.0.0.1:0` works.
struct Server {
    child: ChildGuard,
    logs: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    listening: mpsc::Receiver<SocketAddr>,
    addr: Option<SocketAddr>,
    client: reqwest::Client,
}

impl Server {
    /// Starts `cmd` (which carries `serve` and its arguments) without waiting.
    fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = ChildGuard(cmd.spawn().expect("starting firefly serve"));
        let stderr = child.0.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, listening) = mpsc::channel();
        let reader = {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(event) = serde_json::from_str::<Value>(&line) {
                        if event["message"] == "firefly listening" {
                            if let Some(addr) = event["addr"].as_str().and_then(|a| a.parse().ok()) {
                                let _ = tx.send(addr);
                            }
                        }
                    }
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            })
        };
        Server {
            child,
            logs,
            reader: Some(reader),
            listening,
            addr: None,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        }
    }

    /// Waits for the `firefly listening` line; panics with the log if the process exits first.
    fn wait_listening(&mut self) -> SocketAddr {
        if let Some(addr) = self.addr {
            return addr;
        }
        match self.listening.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                self.addr = Some(addr);
                addr
            }
            Err(e) => {
                let status = self.child.0.try_wait().ok().flatten();
                panic!("firefly serve did not start listening ({e}; exit status {status:?}); log:\n{}", self.logs())
            }
        }
    }

    /// Starts `cmd` and waits until it listens.
    fn start(cmd: Command) -> Server {
        let mut server = Server::spawn(cmd);
        server.wait_listening();
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr.expect("the server is listening"), path)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    /// Polls `/readyz` until it answers 200 and returns its body.
    async fn ready(&self) -> Value {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let last = match self.get("/readyz").send().await {
                Ok(res) if res.status() == StatusCode::OK => return res.json().await.expect("/readyz JSON"),
                Ok(res) => format!("{}: {}", res.status(), res.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "/readyz not 200 within {START_TIMEOUT:?}: {last}\nlog:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn register(&self, email: &str, password: &str) -> Value {
        let res = self.post("/api/auth/register").json(&json!({"email": email, "password": password})).send().await;
        let res = res.expect("POST /api/auth/register");
        assert_eq!(res.status(), StatusCode::CREATED, "registering {email}");
        res.json().await.unwrap()
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/api/auth/login").json(&json!({"email": email, "password": password})).send().await.unwrap()
    }

    /// Logs in, expecting success; returns the access token.
    async fn login_ok(&self, email: &str, password: &str) -> String {
        let res = self.login(email, password).await;
        assert_eq!(res.status(), StatusCode::OK, "logging in {email}");
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    fn sigterm(&self) {
        let pid = self.child.0.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("waiting for firefly") {
                return status;
            }
            assert!(Instant::now() < deadline, "firefly did not exit within {timeout:?}; log:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then expects a clean exit; returns the whole log.
    async fn stop(mut self) -> String {
        self.sigterm();
        let status = self.wait_exit(START_TIMEOUT).await;
        let logs = self.finished_logs();
        assert!(status.success(), "firefly exited with {status} after SIGTERM; log:\n{logs}");
        logs
    }

    /// The log so far.
    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The whole log, once the process has exited (the reader has seen end of file).
    fn finished_logs(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs()
    }
}

fn parse_toml(text: &str) -> toml::Table {
    text.parse::<toml::Table>().unwrap_or_else(|e| panic!("not TOML ({e}):\n{text}"))
}

// ---------------------------------------------------------------------------------------
// `firefly config` and configuration errors
// ---------------------------------------------------------------------------------------

#[test]
fn config_prints_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();

    let mut cmd = firefly(dir.path());
    cmd.arg("config");
    let out = run(cmd, None);
    out.assert_success();
    assert!(out.stdout.contains(r#"listen = "127.0.0.1:8080""#), "{}", out.stdout);
    assert!(out.stdout.contains(r#"data_dir = "./data""#), "{}", out.stdout);
    let config = parse_toml(&out.stdout);
    assert_eq!(config["server"]["listen"].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(config["database"]["auto_migrate"].as_bool(), Some(true));
    assert_eq!(config["log"]["format"].as_str(), Some("json"));
    // Printing the configuration has no side effect: no data directory, no generated secret.
    assert!(!dir.path().join("data").exists(), "`firefly config` created the data directory");

    let secret = "0123456789abcdefghij0123456789ABCDEFGHIJ";
    assert_eq!(secret.len(), 40);
    let mut cmd = firefly(dir.path());
    cmd.env("FIREFLY_AUTH__JWT_SECRET", secret).args(["--database-url", "mysql://root:hunter2@db/x", "config"]);
    let out = run(cmd, None);
    out.assert_success();
    for leaked in [secret, "hunter2"] {
        assert!(!out.stdout.contains(leaked), "`firefly config` printed {leaked:?}:\n{}", out.stdout);
        assert!(!out.stderr.contains(leaked), "`firefly config` logged {leaked:?}:\n{}", out.stderr);
    }
    let config = parse_toml(&out.stdout);
    assert_eq!(config["auth"]["jwt_secret"].as_str(), Some("********"));
    assert_eq!(config["database"]["url"].as_str(), Some("mysql://root:********@db/x"));
}

#[test]
fn unknown_keys_and_bad_values_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |cmd: &mut Command| {
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    };

    // A typo in the file.
    let file = dir.path().join("firefly.toml");
    std::fs::write(&file, "[server]\nlisten_port = 1\n").unwrap();
    let mut cmd = firefly(dir.path());
    cmd.arg("--config").arg(&file);
    serve(&mut cmd);
    run(cmd, None).assert_failure_naming(&["server.listen_port", "firefly.toml"]);
    let mut cmd = firefly(dir.path());
    cmd.arg("--config").arg(&file).arg("config");
    run(cmd, None).assert_failure_naming(&["listen_port"]);

    // A typo in the environment (figment lowercases the key).
    let mut cmd = firefly(dir.path());
    cmd.env("FIREFLY_SERVER__NOPE", "1");
    serve(&mut cmd);
    run(cmd, None).assert_failure_naming(&["server.nope", "FIREFLY_SERVER__NOPE"]);

    // A value of the wrong type.
    let mut cmd = firefly(dir.path());
    cmd.env("FIREFLY_SERVER__BODY_LIMIT_BYTES", "lots");
    serve(&mut cmd);
    run(cmd, None).assert_failure_naming(&["server.body_limit_bytes", "FIREFLY_SERVER__BODY_LIMIT_BYTES"]);

    // A database the binary does not speak.
    let mut cmd = firefly(dir.path());
    cmd.args(["--database-url", "redis://x"]);
    serve(&mut cmd);
    run(cmd, None).assert_failure_naming(&["database.url", "redis"]);

    // A configuration file that is not there.
    let mut cmd = firefly(dir.path());
    cmd.args(["--config", "missing.toml"]);
    serve(&mut cmd);
    run(cmd, None).assert_failure_naming(&["missing.toml", "does not exist"]);
}

#[test]
fn a_start_refused_for_an_invalid_configuration_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = firefly(dir.path());
    cmd.args(["--database-url", "redis://x", "serve", "--listen", "127.0.0.1:0"]);
    run(cmd, None).assert_failure_naming(&["database.url"]);
    let data = dir.path().join("data");
    assert!(
        !data.exists(),
        "a refused start created {} containing {:?}",
        data.display(),
        std::fs::read_dir(&data).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn precedence_is_defaults_then_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("firefly.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:1111\"\n").unwrap();

    let listen_of = |out: &Finished| parse_toml(&out.stdout)["server"]["listen"].as_str().unwrap().to_owned();

    let mut cmd = firefly(dir.path());
    cmd.arg("--config").arg(&file).arg("config");
    let out = run(cmd, None);
    assert_eq!(listen_of(out.assert_success()), "127.0.0.1:1111", "the file beats the defaults");

    // The file can be named by FIREFLY_CONFIG too; that variable is not a configuration key.
    let mut cmd = firefly(dir.path());
    cmd.env("FIREFLY_CONFIG", &file).arg("config");
    let out = run(cmd, None);
    assert_eq!(listen_of(out.assert_success()), "127.0.0.1:1111", "FIREFLY_CONFIG names the file");

    let mut cmd = firefly(dir.path());
    cmd.env("FIREFLY_SERVER__LISTEN", "127.0.0.1:2222").arg("--config").arg(&file).arg("config");
    let out = run(cmd, None);
    assert_eq!(listen_of(out.assert_success()), "127.0.0.1:2222", "the environment beats the file");

    // The command line beats the environment: the server listens where --listen says.
    let (env_port, cli_port) = {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
    };
    let mut cmd = firefly_cheap(dir.path());
    cmd.env("FIREFLY_SERVER__LISTEN", format!("127.0.0.1:{env_port}")).arg("--config").arg(&file).args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{cli_port}"),
    ]);
    let mut server = Server::start(cmd);
    assert_eq!(server.wait_listening().port(), cli_port, "listening on the --listen port");
    let res = server.get("/healthz").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    assert!(TcpStream::connect(("127.0.0.1", env_port)).is_err(), "something listens on the environment's port");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// First start, restart, migrations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fresh_start_on_the_embedded_default_and_restart_keep_the_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = || {
        let mut cmd = firefly_cheap(dir.path());
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())]);
        cmd
    };

    let server = Server::start(serve());
    let ready = server.ready().await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["database"], "sqlite", "{ready}");
    let applied = ready["migrations_applied"].as_i64().expect("migrations_applied");
    assert!(applied > 0, "{ready}");
    assert_eq!(ready["migrations_expected"].as_i64(), Some(applied), "{ready}");

    assert!(data.join("firefly.db").is_file(), "./data/firefly.db missing");
    let secrets_file = data.join("secrets.toml");
    let secrets = std::fs::read_to_string(&secrets_file).expect("./data/secrets.toml");
    let mode = std::fs::metadata(&secrets_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secrets.toml mode is {mode:o}");
    let secret = parse_toml(&secrets)["auth"]["jwt_secret"].as_str().expect("auth.jwt_secret").to_owned();
    assert!(secret.len() >= 32, "generated secret too short: {} characters", secret.len());

    let registered = server.register("ada@example.com", PASSWORD).await;
    let token = registered["access_token"].as_str().expect("access_token").to_owned();
    let res = server.get("/api/auth/profile").bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let logs = server.stop().await;
    assert!(!logs.contains(&secret), "the generated secret is in the log");

    // `firefly config` now reads the generated secret, and masks it.
    let mut cmd = firefly(dir.path());
    cmd.arg("config");
    let out = run(cmd, None);
    out.assert_success();
    assert!(!out.stdout.contains(&secret), "`firefly config` printed the generated secret");
    assert_eq!(parse_toml(&out.stdout)["auth"]["jwt_secret"].as_str(), Some("********"));

    // A second start reuses the secret: the token issued before still works.
    let server = Server::start(serve());
    server.ready().await;
    assert_eq!(std::fs::read_to_string(&secrets_file).unwrap(), secrets, "secrets.toml changed on restart");
    let res = server.get("/api/auth/profile").bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a token from before the restart is refused");
    let profile: Value = res.json().await.unwrap();
    assert_eq!(profile["email"], "ada@example.com");
    server.stop().await;
}

#[tokio::test]
async fn migrate_applies_migrations_and_serve_no_migrate_is_not_ready_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = dir.path().join("migrated");
    let empty = dir.path().join("empty");

    for _ in 0..2 {
        // Twice: the second run finds nothing to do and still reports current.
        let mut cmd = firefly(dir.path());
        cmd.arg("--data-dir").arg(&migrated).arg("migrate");
        let out = run(cmd, None);
        out.assert_success();
        assert!(out.stdout.contains("migrations current"), "{}", out.stdout);
    }
    assert!(migrated.join("firefly.db").is_file());

    // A fresh data directory, migrations not applied: alive but not ready.
    let mut cmd = firefly_cheap(dir.path());
    cmd.arg("--data-dir").arg(&empty).args(["serve", "--no-migrate", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);
    let res = server.get("/healthz").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = server.get("/readyz").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service.unavailable", "{body}");
    server.stop().await;

    // The migrated directory is ready without migrating on start.
    let mut cmd = firefly_cheap(dir.path());
    cmd.arg("--data-dir").arg(&migrated).args(["serve", "--no-migrate", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);
    let res = server.get("/readyz").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap_or_default());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Administrators
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_create_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let create = |email: &str, password: &str| {
        let mut cmd = firefly_cheap(dir.path());
        cmd.args(["admin", "create", "--email", email, "--password-stdin"]);
        run(cmd, Some(password))
    };

    let out = create("boss@example.com", "boss password 1\n");
    out.assert_success();
    assert!(out.stdout.contains("boss@example.com"), "{}", out.stdout);

    create("boss@example.com", "another password\n").assert_failure_naming(&["already exists"]);
    create("shorty@example.com", "short\n").assert_failure_naming(&["password"]);

    let mut cmd = firefly_cheap(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);
    // The trailing newline of standard input is not part of the password.
    let res = server.login("boss@example.com", "boss password 1\n").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let token = server.login_ok("boss@example.com", "boss password 1").await;
    let res = server.get("/api/admin/users").bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    let emails: Vec<&str> = page["items"].as_array().unwrap().iter().filter_map(|u| u["email"].as_str()).collect();
    assert_eq!(emails, ["boss@example.com"], "the failed creations left no account behind");
    assert_eq!(page["items"][0]["role"], "admin");
    server.stop().await;
}

#[tokio::test]
async fn bootstrap_admin_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |email: &str, password: &str| {
        let mut cmd = firefly_cheap(dir.path());
        cmd.env("FIREFLY_BOOTSTRAP__ADMIN_EMAIL", email).env("FIREFLY_BOOTSTRAP__ADMIN_PASSWORD", password).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
        ]);
        cmd
    };

    let server = Server::start(serve("first@example.com", "first admin pw"));
    let token = server.login_ok("first@example.com", "first admin pw").await;
    let res = server.get("/api/admin/users").bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the bootstrap account is not an administrator");
    let logs = server.stop().await;
    assert!(!logs.contains("first admin pw"), "the bootstrap password is in the log");

    let server = Server::start(serve("second@example.com", "second admin pw"));
    let res = server.login("second@example.com", "second admin pw").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a second bootstrap administrator was created");
    let token = server.login_ok("first@example.com", "first admin pw").await;
    let page: Value = server.get("/api/admin/users").bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["total"], 1, "{page}");
    server.stop().await;

    // Half a bootstrap is a configuration error.
    for (var, value) in [
        ("FIREFLY_BOOTSTRAP__ADMIN_EMAIL", "third@example.com"),
        ("FIREFLY_BOOTSTRAP__ADMIN_PASSWORD", "third admin pw"),
    ] {
        let mut cmd = firefly_cheap(dir.path());
        cmd.env(var, value).args(["serve", "--listen", "127.0.0.1:0"]);
        run(cmd, None).assert_failure_naming(&["bootstrap"]);
    }
}

// ---------------------------------------------------------------------------------------
// Shutdown, concurrent starts, logs
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = firefly(dir.path());
    // An expensive hash, so the registration is still running when SIGTERM arrives.
    cmd.env("FIREFLY_AUTH__ARGON2_MEMORY_KIB", "65536").env("FIREFLY_AUTH__ARGON2_ITERATIONS", "6").args([
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut server = Server::start(cmd);
    server.ready().await;
    let addr = server.wait_listening();

    let request = server.post("/api/auth/register").json(&json!({"email": "late@example.com", "password": PASSWORD}));
    let in_flight = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.sigterm();

    let res = tokio::time::timeout(START_TIMEOUT, in_flight)
        .await
        .expect("the in-flight request did not finish")
        .unwrap()
        .expect("the in-flight request failed");
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "late@example.com");

    let status = server.wait_exit(START_TIMEOUT).await;
    let logs = server.finished_logs();
    assert_eq!(status.code(), Some(0), "exit status {status} after SIGTERM; log:\n{logs}");
    // The registration was still running when shutdown began: its request line comes after.
    let position = |needle: &str| logs.lines().position(|line| line.contains(needle));
    let shutting_down = position("shutting down").unwrap_or_else(|| panic!("no shutdown line; log:\n{logs}"));
    let registered =
        position(r#""path":"/api/auth/register""#).unwrap_or_else(|| panic!("no request line; log:\n{logs}"));
    assert!(shutting_down < registered, "the request finished before SIGTERM, so it was not in flight; log:\n{logs}");
    assert!(TcpStream::connect(addr).is_err(), "a new connection succeeded after exit");
}

#[tokio::test]
async fn two_instances_on_one_fresh_data_dir_both_become_ready() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let serve = || {
        let mut cmd = firefly_cheap(dir.path());
        cmd.arg("--data-dir").arg(&data).args(["serve", "--listen", "127.0.0.1:0"]);
        cmd
    };
    // Both started before either is waited for.
    let mut a = Server::spawn(serve());
    let mut b = Server::spawn(serve());
    a.wait_listening();
    b.wait_listening();
    for server in [&a, &b] {
        let ready = server.ready().await;
        assert_eq!(ready["status"], "ready");
    }

    // They generated (or read) one secret: a token from one is good on the other.
    let registered = a.register("twin@example.com", PASSWORD).await;
    let token = registered["access_token"].as_str().unwrap();
    let res = b.get("/api/auth/profile").bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "instance b refuses instance a's token");
    a.stop().await;
    b.stop().await;

    let mut cmd = firefly(dir.path());
    cmd.arg("--data-dir").arg(&data).arg("migrate");
    let out = run(cmd, None);
    out.assert_success();
    assert!(out.stdout.contains("migrations current"), "{}", out.stdout);
}

#[tokio::test]
async fn request_log_carries_the_request_id_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = firefly_cheap(dir.path());
    cmd.env("FIREFLY_LOG__LEVEL", "debug").args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);

    let res = server
        .get("/api/auth/profile")
        .header("authorization", "Bearer supersecret-token-value")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc-123"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "abc-123", "{body}");

    server.register("logged@example.com", "p4ssw0rd-in-body").await;
    server.login_ok("logged@example.com", "p4ssw0rd-in-body").await;
    let res = server.login("nobody@example.com", "p4ssw0rd-in-body").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let logs = server.stop().await;
    let request_lines: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "request")
        .collect();
    let request_id = |event: &Value| {
        event.get("request_id").or_else(|| event["span"].get("request_id")).and_then(Value::as_str).map(str::to_owned)
    };
    let tagged: Vec<&Value> =
        request_lines.iter().filter(|event| request_id(event).as_deref() == Some("abc-123")).collect();
    assert_eq!(tagged.len(), 1, "expected one request line with request id abc-123; log:\n{logs}");
    assert_eq!(tagged[0]["status"], 401, "{}", tagged[0]);
    assert_eq!(tagged[0]["path"], "/api/auth/profile", "{}", tagged[0]);
    assert!(request_lines.len() >= 4, "a request line per request expected; log:\n{logs}");
    for secret in ["supersecret-token-value", "p4ssw0rd-in-body"] {
        assert!(!logs.contains(secret), "{secret:?} is in the log:\n{logs}");
    }
}

/// Secrets and passwords from the environment are taken as text, whatever they look like.
#[tokio::test]
async fn secret_environment_values_are_verbatim_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = firefly_cheap(dir.path());
    cmd.env("FIREFLY_BOOTSTRAP__ADMIN_EMAIL", "digits@example.com")
        .env("FIREFLY_BOOTSTRAP__ADMIN_PASSWORD", "1234567890123")
        .env("FIREFLY_AUTH__JWT_SECRET", "12345678901234567890123456789012345678901234567890")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);
    let res = server
        .post("/api/auth/login")
        .json(&serde_json::json!({"email": "digits@example.com", "password": "1234567890123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", server.logs());
}
