//! Test support for code built on Portcullis: a real server on a free port
//! with a fresh data directory, and an HTTP client that keeps cookies the way
//! a browser does but lets a test read and replay them.
//!
//! ```no_run
//! # async fn demo() {
//! use portcullis::testing::TestApp;
//! let app = TestApp::spawn().await;
//! let alice = app.create_user("alice", "alice@example.com", "a long passphrase", false).await;
//! let client = app.login_as(&alice).await;
//! assert_eq!(client.get("/dashboard").await.status, 200);
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_app::accounts::Registration;
use portcullis_app::model::ClientInfo;
use portcullis_app::{ManualClock, User};
use tokio::sync::oneshot;

use crate::config::{Config, Sources};
use crate::server::{self, Services};

/// A running Portcullis on `127.0.0.1:<free port>`; dropping it stops the server
/// (the shutdown channel closes). Its use cases read the time from `clock`,
/// which starts at the system time and stands still until a test moves it.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The configuration it runs with.
    pub config: Config,
    /// Its store and use cases, for arranging and checking state.
    pub services: Services,
    /// The clock every timeout, lifetime and window is measured on.
    pub clock: Arc<ManualClock>,
    /// Where `/metrics` is served, when `PORTCULLIS_METRICS_BIND` was given.
    pub metrics_addr: Option<SocketAddr>,
    dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// A server with test defaults (cheap Argon2, no rate limits).
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A server with these `PORTCULLIS_*` values over the test defaults.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let app = Self::spawn_in(dir.path(), vars).await;
        Self { dir: Some(dir), ..app }
    }

    /// A server on an existing data directory (to test restarts); the caller owns the directory.
    pub async fn spawn_in(data_dir: &std::path::Path, vars: &[(&str, &str)]) -> Self {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        map.insert("PORTCULLIS_DATA_DIR".into(), data_dir.display().to_string());
        map.insert("PORTCULLIS_BIND".into(), "127.0.0.1:0".into());
        map.insert("PORTCULLIS_ARGON2_MEMORY_KIB".into(), "1024".into());
        map.insert("PORTCULLIS_ARGON2_ITERATIONS".into(), "1".into());
        map.insert("PORTCULLIS_RATE_LIMIT_PER_MINUTE".into(), "0".into());
        for (k, v) in vars {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::load(&Sources::from_map(map)).expect("test configuration");
        let clock = Arc::new(ManualClock::at_system_time());
        let services = server::open_with_clock(&config, clock.clone()).await.expect("open store");
        let state = server::web_state(&config, &services).expect("web state");
        let listener = server::bind(config.bind).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let background = server::start_background(&services);
        // The metrics listener lives as long as the test's runtime.
        let metrics_addr =
            server::start_metrics(&config, &services, std::future::pending()).await.expect("metrics listener");
        let handle = tokio::spawn(async move {
            let _ = server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
            background.shutdown().await;
        });
        Self { addr, config, services, clock, metrics_addr, dir: None, shutdown: Some(tx), handle: Some(handle) }
    }

    /// Moves the server's clock on by `by`: timeouts, lifetimes and windows
    /// run out without waiting for them.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Stops the server and waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.services.store.close().await;
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.as_ref().map_or(self.config.data_dir.as_path(), |d| d.path())
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A fresh client with no cookies.
    pub fn client(&self) -> TestClient {
        TestClient::new(format!("http://{}", self.addr))
    }

    /// Creates a user through the use case (password policy applies).
    pub async fn create_user(&self, username: &str, email: &str, password: &str, admin: bool) -> User {
        let reg = Registration {
            username: username.into(),
            email: email.into(),
            password: password.into(),
            is_admin: admin,
            email_verified: true,
        };
        self.services.accounts.register(reg, &portcullis_app::Origin::command_line()).await.expect("create user")
    }

    /// A client already signed in as `user`, through the store and not the form.
    pub async fn login_as(&self, user: &User) -> TestClient {
        // Read the user afresh: a stale copy carries an old security stamp.
        let user = self.services.accounts.user(user.id).await.expect("user exists");
        let new = self
            .services
            .accounts
            .start_session(
                &user,
                false,
                ClientInfo { ip: Some(std::net::Ipv4Addr::LOCALHOST.into()), user_agent: Some("TestClient".into()) },
            )
            .await
            .expect("start session");
        let client = self.client();
        client.set_cookie(&self.session_cookie_name(), &new.cookie);
        client
    }

    /// The session cookie's name under this configuration.
    pub fn session_cookie_name(&self) -> String {
        portcullis_web::cookies::name(portcullis_web::cookies::SESSION, self.config.base_url.scheme() == "https")
            .into_owned()
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl TestResponse {
    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    /// The `Set-Cookie` header for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The CSRF token in the page.
    pub fn csrf_token(&self) -> Option<String> {
        csrf_token(&self.body)
    }
}

/// The value of the first `<input … name="csrf_token" value="…">` in `html`.
pub fn csrf_token(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\"")?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + 7;
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_owned())
}

/// An HTTP client that keeps cookies, follows no redirects, and shows everything.
pub struct TestClient {
    http: reqwest::Client,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
    user_agent: Mutex<String>,
}

impl TestClient {
    /// A client for `base` (`http://host:port`).
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client");
        Self { http, base, cookies: Mutex::new(BTreeMap::new()), user_agent: Mutex::new("TestClient".into()) }
    }

    /// Sets the User-Agent sent from now on.
    pub fn set_user_agent(&self, ua: &str) {
        *self.user_agent.lock().expect("lock") = ua.into();
    }

    /// A cookie's current value.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().expect("lock").get(name).cloned()
    }

    /// Sets (or replaces) a cookie.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies.lock().expect("lock").insert(name.into(), value.into());
    }

    /// Forgets a cookie.
    pub fn remove_cookie(&self, name: &str) {
        self.cookies.lock().expect("lock").remove(name);
    }

    /// All cookies, as a `Cookie:` header value.
    pub fn cookie_header(&self) -> String {
        self.cookies.lock().expect("lock").iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Sends a request with our cookies and headers, and records the cookies set.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> TestResponse {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{}", self.base, path) };
        let mut req =
            self.http.request(method, url).header("user-agent", self.user_agent.lock().expect("lock").clone());
        let cookies = self.cookie_header();
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/x-www-form-urlencoded").body(b);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.unwrap_or_default();
        let mut jar = self.cookies.lock().expect("lock");
        for sc in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let first = sc.split(';').next().unwrap_or("");
            if let Some((k, v)) = first.split_once('=') {
                let lower = sc.to_ascii_lowercase();
                if v.is_empty() || lower.contains("max-age=0") {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_owned(), v.to_owned());
                }
            }
        }
        TestResponse { status, headers, body }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    /// POST a urlencoded form as given (no token added).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.send(reqwest::Method::POST, path, Some(body), &[]).await
    }

    /// GETs `page` for its CSRF token, then POSTs `fields` and the token to `action`.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> TestResponse {
        let token = self.get(page).await.csrf_token().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form(action, &all).await
    }

    /// Logs in through the form.
    pub async fn login(&self, username: &str, password: &str, remember: bool) -> TestResponse {
        let mut fields = vec![("username", username), ("password", password)];
        if remember {
            fields.push(("remember_me", "on"));
        }
        self.submit("/login", "/login", &fields).await
    }
}

/// A real SMTP server on loopback that keeps every message it receives: the
/// other end of `PORTCULLIS_SMTP_URL` in tests. It can be stopped and started
/// again on the same port to play an outage.
pub struct SmtpSink {
    /// The port it listens on.
    pub port: u16,
    messages: std::sync::Arc<Mutex<Vec<String>>>,
    tasks: Option<tokio::task::JoinSet<()>>,
}

impl SmtpSink {
    /// A sink on a free port.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A sink on `port` (0: any free port).
    pub async fn start_on(port: u16) -> Self {
        let mut sink = Self { port, messages: Default::default(), tasks: None };
        sink.resume().await;
        sink
    }

    /// `smtp://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops listening and drops every open connection.
    pub async fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    /// Listens again on the same port, keeping the messages received so far.
    pub async fn resume(&mut self) {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("bind smtp sink");
        self.port = listener.local_addr().expect("addr").port();
        let store = self.messages.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let conns = std::sync::Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let conns_for_stop = conns.clone();
        tasks.spawn(async move {
            // Connection tasks live in a set owned by this task: stopping the
            // sink drops it and so ends them too.
            let _keep = conns_for_stop;
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let store = store.clone();
                conns.lock().expect("lock").spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                            "DATA" => {
                                let _ = write.write_all(b"354 go ahead\r\n").await;
                                let mut data = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(&l));
                                    data.push('\n');
                                }
                                store.lock().expect("lock").push(data);
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                return;
                            }
                            _ => b"502 not implemented\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Every message received, raw.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits (up to `secs` seconds) until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let m = self.messages();
            if m.len() >= n || std::time::Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The first link in `message` whose path starts with `path` (e.g.
/// `/reset-password/`), as an absolute URL.
pub fn find_link(message: &str, path: &str) -> Option<String> {
    let at = message.find(path)?;
    let start = message[..at].rfind("http")?;
    let end = message[at + path.len()..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .map_or(message.len(), |i| at + path.len() + i);
    Some(message[start..end].to_owned())
}
