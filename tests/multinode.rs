//! Two real `portcullis serve` processes on one PostgreSQL database, driven
//! over HTTP: first each node directly, then (when nginx is installed)
//! through nginx running docs/nginx/portcullis.conf, the config that
//! docs/deploying.md shows. Either way a session made on one node works on the
//! other, a logout on one ends it on both, failed logins and rate limits are
//! counted across the nodes, a queued mail goes out exactly once, and a post
//! written on one node is read on the other.
//!
//! Runs when PORTCULLIS_TEST_POSTGRES_URL is set (as `.ci/run` does), in a
//! schema of its own that is dropped at the end; without it the test is
//! skipped, or fails when PORTCULLIS_TEST_REQUIRE_SERVICES is set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis::testing::{SmtpSink, TestClient, TestResponse, find_link};
use sqlx::{Connection as _, Executor as _, PgConnection};

// The store's tests read the same variables; one file says how for all.
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "../crates/store/tests/support/services.rs"]
mod services;

use services::POSTGRES_URL_VAR;

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a completely new passphrase";
/// Shared by both nodes, as it must be in production.
const SECRET_KEY: &str = "multinode-test-key-0123456789abcdef0123456789";
const LOCKOUT_THRESHOLD: usize = 3;
const RATE_LIMIT: usize = 20;
/// The whole scenario; a hang fails instead, and still cleans up.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Where the documented nginx config lives, relative to the crate root.
const NGINX_TEMPLATE: &str = "docs/nginx/portcullis.conf";
/// The upstream line of the template that stands for "one line per node".
const TEMPLATE_NODE: &str = "server 127.0.0.1:8080";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn two_nodes_share_one_postgres_database() {
    multi_node(None).await;
}

/// The same with sessions and rate-limit counters in a shared Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(portcullis_no_postgres, portcullis_no_redis),
    ignore = "needs PostgreSQL and Redis: set PORTCULLIS_TEST_POSTGRES_URL and PORTCULLIS_TEST_REDIS_URL"
)]
async fn two_nodes_share_postgres_and_redis() {
    let Some(redis) = services::redis_url() else {
        return;
    };
    multi_node(Some(redis)).await;
}

async fn multi_node(redis: Option<String>) {
    let Some(base) = services::postgres_url() else {
        return;
    };
    let schema = schema_name();
    let mut admin = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_URL_VAR}: {e}"));
    admin
        .execute(format!(r#"CREATE SCHEMA "{schema}""#).as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));

    // On a task of its own, so that a panic or a timeout still reaches the
    // cleanup below; the processes are killed when the task's guards drop.
    let with_redis = redis.is_some();
    let mut task =
        tokio::spawn(scenario(with_search_path(&base, &schema), redis.map(|url| (url, format!("{schema}:")))));
    let outcome = match tokio::time::timeout(TIMEOUT, &mut task).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_panic() => Err(Failure::Panic(e.into_panic())),
        Ok(Err(e)) => Err(Failure::Other(format!("the scenario failed: {e}"))),
        Err(_) => {
            task.abort();
            let _ = task.await;
            Err(Failure::Other(format!("timed out after {TIMEOUT:?}")))
        }
    };
    // With Redis configured, no session and no counter was written to SQL.
    let in_sql: Option<i64> = if with_redis && outcome.is_ok() {
        sqlx::query_scalar(&format!(
            r#"SELECT (SELECT COUNT(*) FROM "{schema}".sessions) + (SELECT COUNT(*) FROM "{schema}".rate_limits)"#
        ))
        .fetch_one(&mut admin)
        .await
        .ok()
    } else {
        None
    };
    let dropped = admin.execute(format!(r#"DROP SCHEMA "{schema}" CASCADE"#).as_str()).await;
    let _ = admin.close().await;
    match outcome {
        Ok(()) => {}
        Err(Failure::Panic(payload)) => std::panic::resume_unwind(payload),
        Err(Failure::Other(message)) => panic!("{message}"),
    }
    dropped.unwrap_or_else(|e| panic!("cannot drop schema {schema}: {e}"));
    if with_redis {
        assert_eq!(in_sql, Some(0), "sessions and counters lived in Redis, not in SQL");
    }
}

enum Failure {
    Panic(Box<dyn std::any::Any + Send>),
    Other(String),
}

async fn scenario(database_url: String, redis: Option<(String, String)>) {
    let sink = SmtpSink::start().await;
    let [port_a, port_b, front_port] = free_ports();
    // Links in mail point at the front (nginx), wherever the request came in.
    let front = format!("http://127.0.0.1:{front_port}");
    let mut env = node_env(&database_url, &front, &sink.url());
    if let Some((url, prefix)) = redis {
        env.push(("PORTCULLIS_REDIS_URL", url));
        env.push(("PORTCULLIS_REDIS_PREFIX", prefix));
    }

    // As docs/deploying.md says: migrate once, then start the nodes.
    migrate(&env).await;
    let mut a = Node::start("A", port_a, &env);
    let mut b = Node::start("B", port_b, &env);
    a.wait_ready().await;
    b.wait_ready().await;

    let direct = Round {
        label: "direct",
        a: a.url.clone(),
        b: b.url.clone(),
        front: front.clone(),
        client_ip: "198.51.100.1",
        sink: &sink,
        nginx: None,
        database_url: &database_url,
    };
    direct.run().await;

    match find_nginx() {
        None => eprintln!("nginx is not installed: the checks through nginx were skipped"),
        Some(bin) => {
            let nginx = Nginx::start(&bin, front_port, &[port_a, port_b]).await;
            let proxied = Round {
                label: "nginx",
                a: front.clone(),
                b: front.clone(),
                front: front.clone(),
                client_ip: "198.51.100.2",
                sink: &sink,
                nginx: Some(&nginx),
                database_url: &database_url,
            };
            proxied.run().await;
            let upstreams = nginx.upstreams();
            assert_eq!(
                upstreams,
                BTreeSet::from([format!("127.0.0.1:{port_a}"), format!("127.0.0.1:{port_b}")]),
                "nginx spread the requests over both nodes"
            );
        }
    }

    // SIGTERM: each node finishes what it is doing and exits cleanly.
    a.stop().await;
    b.stop().await;
}

/// The settings both nodes share; each adds its own bind address and data dir.
fn node_env(database_url: &str, front: &str, smtp_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PORTCULLIS_DATABASE_URL", database_url.to_owned()),
        ("PORTCULLIS_DATABASE_MAX_CONNECTIONS", "5".to_owned()),
        ("PORTCULLIS_BASE_URL", front.to_owned()),
        ("PORTCULLIS_SECRET_KEY", SECRET_KEY.to_owned()),
        ("PORTCULLIS_SMTP_URL", smtp_url.to_owned()),
        ("PORTCULLIS_ARGON2_MEMORY_KIB", "1024".to_owned()),
        ("PORTCULLIS_ARGON2_ITERATIONS", "1".to_owned()),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", LOCKOUT_THRESHOLD.to_string()),
        ("PORTCULLIS_RATE_LIMIT_PER_MINUTE", RATE_LIMIT.to_string()),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()),
        ("PORTCULLIS_LOG", "warn".to_owned()),
    ]
}

/// `portcullis` with only our `PORTCULLIS_*` settings (none inherited) and
/// `dir` as working directory (so no stray `portcullis.toml` is read).
fn portcullis(dir: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PORTCULLIS_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir).stdin(Stdio::null()).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.env("PORTCULLIS_DATA_DIR", dir.join("data"));
    cmd
}

async fn migrate(env: &[(&str, String)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = tokio::process::Command::from(portcullis(dir.path(), env));
    let out = cmd.arg("migrate").output().await.expect("run portcullis migrate");
    assert!(out.status.success(), "portcullis migrate failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A running `portcullis serve`; dropping it kills the process.
struct Node {
    name: &'static str,
    url: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(name: &'static str, port: u16, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("portcullis.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = portcullis(dir.path(), env)
            .arg("serve")
            .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start portcullis serve");
        Self { name, url: format!("http://127.0.0.1:{port}"), child, log, _dir: dir }
    }

    /// Waits until `/healthz` answers, then checks `/readyz` (the database).
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("node {} exited with {status}:\n{}", self.name, read(&self.log));
            }
            let ok = http.get(format!("{}/healthz", self.url)).send().await.is_ok_and(|r| r.status() == 200);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "node {} did not answer /healthz:\n{}", self.name, read(&self.log));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ready = http.get(format!("{}/readyz", self.url)).send().await.expect("readyz");
        assert_eq!(ready.status(), 200, "node {} is ready", self.name);
    }

    /// SIGTERM, and the node must exit with success.
    async fn stop(mut self) {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(sent.success(), "SIGTERM to node {}", self.name);
        let deadline = Instant::now() + Duration::from_secs(25);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                break status;
            }
            assert!(Instant::now() < deadline, "node {} did not stop on SIGTERM", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "node {} exited with {status}:\n{}", self.name, read(&self.log));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of node {} ----\n{}", self.name, read(&self.log));
        }
    }
}

/// nginx in the foreground on a loopback port, every path in a temp dir;
/// dropping it kills the process.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(bin: &Path, port: u16, nodes: &[u16]) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let template = std::fs::read_to_string(root.join(NGINX_TEMPLATE)).expect("read the nginx template");
        let guide = std::fs::read_to_string(root.join("docs/deploying.md")).expect("read docs/deploying.md");
        assert!(guide.contains(template.trim()), "docs/deploying.md shows {NGINX_TEMPLATE} as it is");

        let dir = tempfile::tempdir().expect("temp dir");
        // Readable by the unprivileged worker user when run as root.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let d = dir.path().display();
        let built = Command::new(bin).arg("-V").output().expect("nginx -V");
        let built = String::from_utf8_lossy(&built.stderr).into_owned();
        let mut temp_paths = format!("    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n");
        for module in ["fastcgi", "uwsgi", "scgi"] {
            if !built.contains(&format!("--without-http_{module}_module")) {
                temp_paths.push_str(&format!("    {module}_temp_path {d}/{module};\n"));
            }
        }
        let conf = format!(
            "pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20   log_format multinode '$request_id $upstream_addr $status \"$request\"';\n\
             \x20   access_log {d}/access.log multinode;\n\
             {temp_paths}\n\
             {site}\n\
             }}\n",
            site = nginx_site(&template, port, nodes),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let out = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start nginx");
        let mut nginx = Self { child, dir };
        nginx.wait_ready(port).await;
        nginx
    }

    async fn wait_ready(&mut self, port: u16) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("nginx exited with {status}:\n{}", self.logs());
            }
            let ok = http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "nginx did not answer:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn access_log(&self) -> String {
        read(&self.dir.path().join("access.log"))
    }

    fn logs(&self) -> String {
        let d = self.dir.path();
        format!("{}\n{}\n{}", read(&d.join("stderr.log")), read(&d.join("error.log")), read(&d.join("nginx.conf")))
    }

    /// The node that served `res`, found by its request id in the access log
    /// (nginx sends its `$request_id` as `X-Request-Id`; Portcullis keeps it).
    async fn upstream_of(&self, res: &TestResponse) -> String {
        let id = res.header("x-request-id").expect("X-Request-Id in the response").to_owned();
        assert!(
            id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
            "nginx's request id reached the node: {id}"
        );
        // nginx writes the line once the response is done, maybe just after we read it.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let log = self.access_log();
            if let Some(line) = log.lines().find(|l| l.starts_with(&id)) {
                return line.split(' ').nth(1).unwrap_or_default().to_owned();
            }
            assert!(Instant::now() < deadline, "request {id} is not in the access log:\n{log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every node nginx passed a request to.
    fn upstreams(&self) -> BTreeSet<String> {
        self.access_log()
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|addr| *addr != "-")
            .map(|addr| addr.trim_end_matches(',').to_owned())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM: nginx's fast stop, which also ends its workers.
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- nginx ----\n{}\n{}", self.logs(), self.access_log());
        }
    }
}

/// The documented site config with the nodes' and the front's ports filled
/// in. The test speaks plain HTTP, so the TLS lines are left out; everything
/// else (headers, body size, the upstream) is used as written.
fn nginx_site(template: &str, port: u16, nodes: &[u16]) -> String {
    let mut out = String::new();
    let (mut upstream, mut listen) = (false, false);
    for line in template.lines() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        if code.starts_with(TEMPLATE_NODE) {
            upstream = true;
            for node in nodes {
                out.push_str(&line.replacen("127.0.0.1:8080", &format!("127.0.0.1:{node}"), 1));
                out.push('\n');
            }
        } else if code.starts_with("listen ") {
            if !listen {
                out.push_str(&format!("{indent}listen 127.0.0.1:{port};\n"));
            }
            listen = true;
        } else if code.starts_with("ssl_") || code.starts_with("http2 ") {
            // TLS only.
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(upstream && listen, "{NGINX_TEMPLATE} has a `{TEMPLATE_NODE}` line and a `listen` line");
    out
}

/// The checks, made once against the nodes directly and once through nginx.
/// `a` and `b` are where requests "on A" and "on B" go: the two nodes, or
/// both the proxy, which then alternates between the nodes.
struct Round<'a> {
    label: &'static str,
    a: String,
    b: String,
    /// PORTCULLIS_BASE_URL.
    front: String,
    /// The client address the rate-limit check claims (X-Forwarded-For).
    client_ip: &'static str,
    sink: &'a SmtpSink,
    nginx: Option<&'a Nginx>,
    /// The database both nodes use.
    database_url: &'a str,
}

impl Round<'_> {
    async fn run(&self) {
        let alice = format!("{}_alice", self.label);
        let alice_email = format!("alice.{}@example.com", self.label);
        let bob = format!("{}_bob", self.label);
        let bob_email = format!("bob.{}@example.com", self.label);
        register(&self.b, &alice, &alice_email).await;
        register(&self.a, &bob, &bob_email).await;

        self.sessions_are_shared(&alice).await;
        self.lockout_counts_on_both_nodes(&bob).await;
        self.rate_limits_count_on_both_nodes().await;
        self.mail_goes_out_once(&alice_email, &bob_email).await;
        self.posts_are_shared(&alice).await;
        self.tokens_are_shared(&alice).await;
        self.large_bodies_are_refused().await;
    }

    /// Which node served `res`, sent to `base`.
    async fn node(&self, res: &TestResponse, base: &str) -> String {
        match self.nginx {
            Some(nginx) => nginx.upstream_of(res).await,
            None => base.trim_start_matches("http://").to_owned(),
        }
    }

    async fn sessions_are_shared(&self, alice: &str) {
        let on_a = TestClient::new(self.a.clone());
        let login = on_a.login(alice, PW, false).await;
        assert_eq!((login.status, login.location()), (303, Some("/dashboard")), "{}: login", self.label);
        let cookie = on_a.cookie("portcullis_session").expect("session cookie");

        let on_b = TestClient::new(self.b.clone());
        on_b.set_cookie("portcullis_session", &cookie);
        let dashboard = on_b.get("/dashboard").await;
        assert_eq!(dashboard.status, 200, "{}: the session made on A works on B", self.label);
        assert!(dashboard.body.contains(&format!("Welcome, {alice}!")), "{}: signed in as {alice}", self.label);
        assert_ne!(self.node(&login, &self.a).await, self.node(&dashboard, &self.b).await, "{}", self.label);

        let logout = on_b.submit("/dashboard", "/logout", &[]).await;
        assert_eq!(logout.status, 303, "{}: logout on B", self.label);
        let refused = on_a.get("/dashboard").await;
        assert!(
            matches!(refused.status, 302 | 303) && refused.location().is_some_and(|l| l.starts_with("/login")),
            "{}: A refuses the cookie B logged out: {} {:?}",
            self.label,
            refused.status,
            refused.location()
        );
        assert_ne!(self.node(&logout, &self.b).await, self.node(&refused, &self.a).await, "{}", self.label);
    }

    async fn lockout_counts_on_both_nodes(&self, bob: &str) {
        let mut guessed_on = BTreeSet::new();
        for i in 0..LOCKOUT_THRESHOLD {
            let base = if i % 2 == 0 { &self.a } else { &self.b };
            let res = self.login_attempt(base, bob, &format!("wrong guess {i}")).await;
            assert_eq!(res.status, 200, "{}: guess {i}", self.label);
            assert!(res.body.contains("Invalid username or password"), "{}: guess {i} is checked", self.label);
            guessed_on.insert(self.node(&res, base).await);
        }
        assert_eq!(guessed_on.len(), 2, "{}: the guesses went to both nodes", self.label);
        // Neither node saw the threshold on its own, yet the name is locked on both.
        let mut refused_on = BTreeSet::new();
        for base in [&self.a, &self.b] {
            let res = self.login_attempt(base, bob, PW).await;
            assert_eq!(res.status, 200, "{}: locked, not signed in", self.label);
            assert!(res.body.contains("temporarily locked"), "{}: locked after {LOCKOUT_THRESHOLD}", self.label);
            refused_on.insert(self.node(&res, base).await);
        }
        assert_eq!(refused_on.len(), 2, "{}: both nodes refuse", self.label);
    }

    /// A login from a browser that never signed in to the account, followed
    /// by one more request, so that behind a round-robin proxy the next
    /// attempt's POST goes to the other node.
    async fn login_attempt(&self, base: &str, username: &str, password: &str) -> TestResponse {
        let stranger = TestClient::new(base.to_owned());
        let res = stranger.login(username, password, false).await;
        assert_eq!(stranger.get("/healthz").await.status, 200);
        res
    }

    async fn rate_limits_count_on_both_nodes(&self) {
        // The nodes count in fixed one-minute windows of the wall clock. A
        // minute that turned during the check split its count over two
        // windows; then it runs again as another client, whose allowance is
        // whole. The check takes seconds: no minute turns during both.
        let spare = format!("{}1", self.client_ip);
        for client_ip in [self.client_ip, spare.as_str()] {
            let started = wall_minute();
            let outcome = self.rate_limit_check(client_ip).await;
            if wall_minute() == started {
                return outcome.unwrap_or_else(|problem| panic!("{}: {problem}", self.label));
            }
            eprintln!("{}: a minute turned during the rate-limit check; it runs again", self.label);
        }
        panic!("{}: a minute turned during both rate-limit checks", self.label);
    }

    /// Over the limit in one window, each node refuses `client_ip`; another
    /// client is let through.
    async fn rate_limit_check(&self, client_ip: &str) -> Result<(), String> {
        let c = TestClient::new(self.a.clone());
        let token = c.get("/register").await.csrf_token().expect("CSRF token");
        let body = format!("username=x&email=bad&password=p&csrf_token={token}");
        let post = |base: &str, ip: &str| {
            let (url, body, ip) = (format!("{base}/register"), body.clone(), ip.to_owned());
            let c = &c;
            async move { c.send(reqwest::Method::POST, &url, Some(body), &[("x-forwarded-for", &ip)]).await }
        };
        let mut counted_on = BTreeSet::new();
        let mut problems = Vec::new();
        for i in 0..RATE_LIMIT {
            let base = if i % 2 == 0 { &self.a } else { &self.b };
            let res = post(base, client_ip).await;
            if res.status != 200 {
                problems.push(format!("attempt {} of {RATE_LIMIT} was answered {}", i + 1, res.status));
            }
            counted_on.insert(self.node(&res, base).await);
        }
        assert_eq!(counted_on.len(), 2, "{}: the attempts went to both nodes", self.label);
        for base in [&self.a, &self.b] {
            let res = post(base, client_ip).await;
            if res.status != 429 {
                problems.push(format!("over {RATE_LIMIT} in all, {base} answered {}", res.status));
                continue;
            }
            let wait: u64 = res.header("retry-after").expect("Retry-After").parse().expect("seconds");
            assert!((1..=60).contains(&wait), "{}: Retry-After {wait}", self.label);
        }
        let other = post(&self.b, "203.0.113.9").await;
        assert_eq!(other.status, 200, "{}: another client has its own allowance", self.label);
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }

    async fn mail_goes_out_once(&self, alice_email: &str, bob_email: &str) {
        let on_a = TestClient::new(self.a.clone());
        let res = on_a.submit("/forgot-password", "/forgot-password", &[("email", alice_email)]).await;
        assert_eq!(res.status, 303, "{}: forgot-password on A", self.label);
        let reset = "Reset your password";
        let deadline = Instant::now() + Duration::from_secs(10);
        while mails(self.sink, alice_email, reset).is_empty() {
            assert!(Instant::now() < deadline, "{}: no reset mail arrived", self.label);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Once no mail is left unsent, none can be claimed and sent again;
        // a moment more lets a send already under way (a claim made twice) land.
        let mut db = PgConnection::connect(self.database_url).await.expect("connect to PostgreSQL");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let unsent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
                .fetch_one(&mut db)
                .await
                .expect("count unsent mail");
            if unsent == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{}: mail left unsent", self.label);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = db.close().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = mails(self.sink, alice_email, reset);
        assert_eq!(sent.len(), 1, "{}: the reset mail was sent exactly once", self.label);
        for email in [alice_email, bob_email] {
            let n = mails(self.sink, email, "Confirm your email address").len();
            assert_eq!(n, 1, "{}: one verification mail to {email}", self.label);
        }

        let link = find_link(&sent[0], "/reset-password/").expect("reset link");
        let path = link.strip_prefix(&self.front).expect("the link is under PORTCULLIS_BASE_URL");
        let on_b = TestClient::new(self.b.clone());
        let res = on_b.submit(path, path, &[("password", NEW_PW)]).await;
        assert_eq!((res.status, res.location()), (303, Some("/login")), "{}: reset on B", self.label);
    }

    async fn posts_are_shared(&self, alice: &str) {
        let author = TestClient::new(self.a.clone());
        let login = author.login(alice, NEW_PW, false).await;
        assert_eq!(login.status, 303, "{}: the password reset on B works on A", self.label);
        let title = format!("Written on A ({})", self.label);
        let created =
            author.submit("/posts/new", "/posts/new", &[("title", &title), ("content", "and read on B.")]).await;
        assert_eq!(created.status, 303, "{}: post created on A", self.label);
        let path = created.location().expect("Location of the new post").to_owned();
        assert!(path.starts_with("/posts/"), "{path}");

        let reader = TestClient::new(self.b.clone());
        let page = reader.get(&path).await;
        assert_eq!(page.status, 200, "{}: the post is there on B", self.label);
        assert!(page.body.contains(&title), "{}: with its title", self.label);
        assert_ne!(self.node(&created, &self.a).await, self.node(&page, &self.b).await, "{}", self.label);
        assert!(reader.get("/").await.body.contains(&title), "{}: and on B's home page", self.label);
    }

    /// A token made on A works on B; revoked on B, it is refused on the
    /// next request to A.
    async fn tokens_are_shared(&self, alice: &str) {
        let owner = TestClient::new(self.a.clone());
        assert_eq!(owner.login(alice, NEW_PW, false).await.status, 303, "{}: login", self.label);
        let fields = [("name", "script"), ("scope", "read"), ("expires_in_days", "30")];
        let made = owner.submit("/account/tokens", "/account/tokens", &fields).await;
        assert_eq!(made.status, 303, "{}: token made: {}", self.label, made.body);
        let page = owner.get("/account/tokens").await;
        let start = page.body.find("pcat_").expect("the new token is shown");
        let token: String = page.body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let revoke = page
            .body
            .split('"')
            .find(|s| s.starts_with("/account/tokens/") && s.ends_with("/revoke"))
            .expect("a revoke form")
            .to_owned();
        let bearer = format!("Bearer {token}");
        let api = |base: &str| {
            let client = TestClient::new(base.to_owned());
            let bearer = bearer.clone();
            async move { client.send(reqwest::Method::GET, "/api/v1/me", None, &[("authorization", &bearer)]).await }
        };
        let used = api(&self.b).await;
        assert_eq!(used.status, 200, "{}: the token made on A works on B: {}", self.label, used.body);

        let revoker = TestClient::new(self.b.clone());
        assert_eq!(revoker.login(alice, NEW_PW, false).await.status, 303, "{}: login on B", self.label);
        let revoked = revoker.submit("/account/tokens", &revoke, &[]).await;
        assert_eq!(revoked.status, 303, "{}: revoked on B", self.label);
        let refused = api(&self.a).await;
        assert_eq!(refused.status, 401, "{}: A refuses the token B revoked: {}", self.label, refused.body);
        assert_ne!(self.node(&revoked, &self.b).await, self.node(&refused, &self.a).await, "{}", self.label);
    }

    async fn large_bodies_are_refused(&self) {
        let big = format!("username=alice&password={}", "x".repeat(100 * 1024));
        let res = TestClient::new(self.a.clone()).send(reqwest::Method::POST, "/login", Some(big), &[]).await;
        assert_eq!(res.status, 413, "{}: a body over the limit", self.label);
    }
}

async fn register(base: &str, username: &str, email: &str) {
    let c = TestClient::new(base.to_owned());
    let res = c.submit("/register", "/register", &[("username", username), ("email", email), ("password", PW)]).await;
    assert_eq!((res.status, res.location()), (303, Some("/dashboard")), "register {username}: {}", res.body);
}

/// The messages the sink got for `to` with this subject.
fn mails(sink: &SmtpSink, to: &str, subject: &str) -> Vec<String> {
    let (to, subject) = (format!("To: {to}"), format!("Subject: {subject}"));
    sink.messages().into_iter().filter(|m| m.contains(&to) && m.contains(&subject)).collect()
}

/// The wall clock's minute, as the nodes' rate-limit windows count it.
fn wall_minute() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() / 60_000
}

/// Three distinct free loopback ports, for processes that bind them a
/// moment later. Drawn below Linux's ephemeral range (32768 on), where
/// outgoing connections (the other tests' to PostgreSQL, say) take their
/// ports, so none of those can take one in that moment.
fn free_ports() -> [u16; 3] {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut draw = u64::from(std::process::id()) * 7919 + nanos;
    let mut ports = Vec::new();
    while ports.len() < 3 {
        draw = draw.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let port = 20_000 + u16::try_from((draw >> 33) % 12_000).expect("below 12,000");
        if !ports.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    [ports[0], ports[1], ports[2]]
}

/// `nginx` on the PATH or in the usual sbin directories.
fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A schema name no other run uses at the same time.
fn schema_name() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    format!("multinode_{}_{nanos}", std::process::id())
}

/// The URL with `schema` first on the search path of every connection
/// (libpq's `options`, which sqlx reads from the URL).
fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
