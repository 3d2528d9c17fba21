//! A first run: the administrator made from the printed hint or the one-time
//! setup link, the password asked for on a terminal, the first login from the
//! browser that registered, the dashboard's greeting, the migrations log.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portcullis::testing::{TestApp, TestClient};

const PW: &str = "correct horse battery staple";

/// The binary with a clean environment on `data_dir`, cheap hashing, and
/// the log at `info`.
fn command(data_dir: &Path) -> Command {
    command_of(env!("CARGO_BIN_EXE_portcullis"), data_dir)
}

/// `program` with the environment of [`command`].
fn command_of(program: &str, data_dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PORTCULLIS_DATA_DIR", data_dir)
        .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
        .env("PORTCULLIS_LOG", "info")
        .current_dir(data_dir.parent().unwrap_or(data_dir));
    cmd
}

/// Runs the binary to the end with `args`, stdin closed: exit code, stdout, stderr.
fn run(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = command(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portcullis");
    if let (Some(mut input), Some(s)) = (child.stdin.take(), stdin) {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A running `portcullis serve`, its log lines arriving on a channel.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = command(data_dir);
        cmd.arg("serve")
            .env("PORTCULLIS_BIND", "127.0.0.1:0")
            .env("PORTCULLIS_LOG_FORMAT", "pretty")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn portcullis serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// The first log line containing `needle`, waiting up to 60 s.
    fn line_with(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?} in the log: {:#?}", self.seen),
            }
        }
    }

    /// Reads what else it logs until it has been quiet for half a second.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
    }

    /// The address it serves on, from its log.
    fn base(&mut self) -> String {
        let line = self.line_with("Portcullis is serving http://");
        let rest = &line[line.find("http://").expect("a URL")..];
        rest.split_whitespace().next().expect("the URL").to_owned()
    }

    /// The setup link's token, from its log.
    fn setup_token(&mut self) -> String {
        let line = self.line_with("/setup/");
        let rest = &line[line.find("/setup/").expect("a link") + "/setup/".len()..];
        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the printed hint and link ---------------------------------------------

#[tokio::test]
async fn serve_prints_a_working_setup_link_and_the_bare_binary_path() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut served = Served::start(&data, &[]);
    let hint = served.line_with("user create");
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_portcullis")).expect("the binary's real path");
    let expected =
        format!("{} user create --username admin --email admin@example.com --admin --verified", exe.display());
    assert!(hint.contains(&expected), "the binary's real path: {hint}");
    assert!(!hint.contains("--password-stdin"), "a command that asks for the password: {hint}");
    let link = served.line_with("/setup/");
    assert!(link.contains("http://127.0.0.1:8080/setup/"), "under PORTCULLIS_BASE_URL: {link}");
    let token = served.setup_token();
    assert_eq!(token.len(), 43, "256 random bits: {link}");

    let c = TestClient::new(served.base());
    let page = c.get(&format!("/setup/{token}")).await;
    assert_eq!(page.status, 200, "the printed link opens the page");
    let res = c
        .submit(
            &format!("/setup/{token}"),
            &format!("/setup/{token}"),
            &[("username", "root"), ("email", "root@example.com"), ("password", PW)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(c.get(&format!("/setup/{token}")).await.status, 404, "gone once used");
    drop(served);

    let (code, out, err) = run(&data, &["user", "list"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("root") && out.contains("admin=true") && out.contains("verified=true"), "{out}");

    // With an administrator, neither the link nor the hint is printed.
    let mut served = Served::start(&data, &[]);
    let base = served.base();
    // It answers only after start-up has said all it says.
    assert_eq!(TestClient::new(base.clone()).get("/healthz").await.status, 200);
    served.drain();
    assert!(!served.seen.iter().any(|l| l.contains("/setup/") || l.contains("user create")), "{:#?}", served.seen);
    assert_eq!(TestClient::new(base).get(&format!("/setup/{token}")).await.status, 404);
}

#[test]
fn under_cargo_run_the_hint_is_a_cargo_run_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    // What `cargo run` sets for the program it runs.
    let cargo = [("CARGO", "/usr/local/bin/cargo"), ("CARGO_PKG_NAME", "portcullis")];
    let mut served = Served::start(&data, &cargo);
    let hint = served.line_with("user create");
    // Tests run the debug build: `cargo run` without `--release`.
    assert!(
        hint.contains("cargo run -- user create --username admin --email admin@example.com --admin --verified"),
        "{hint}"
    );
}

// ---- the setup page ---------------------------------------------------------

async fn audit_count(app: &TestApp, kind: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_events WHERE kind = '{kind}'"))
        .fetch_one(app.services.store.pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn the_setup_link_makes_one_administrator_then_is_gone() {
    let app = TestApp::spawn().await;
    let token = app.services.accounts.open_setup().await.expect("open").expect("no administrator yet");
    let path = format!("/setup/{token}");
    let c = app.client();

    let page = c.get(&path).await;
    assert_eq!(page.status, 200);
    for field in ["name=\"username\"", "name=\"email\"", "name=\"password\"", "name=\"csrf_token\""] {
        assert!(page.body.contains(field), "{field}");
    }

    // CSRF: without the token, 403 and nothing made.
    let fields = [("username", "root"), ("email", "root@example.com"), ("password", PW)];
    assert_eq!(c.post_form(&path, &fields).await.status, 403);
    assert!(!app.services.accounts.has_admin().await.expect("count"));

    // A wrong token, read or posted: 404.
    let other = portcullis_app::tokens::random_b64(32);
    assert_eq!(c.get(&format!("/setup/{other}")).await.status, 404);
    assert_eq!(c.submit(&path, &format!("/setup/{other}"), &fields).await.status, 404);
    assert_eq!(c.get("/setup/").await.status, 404);
    assert_eq!(c.get(&format!("/setup/{token}x")).await.status, 404);

    // The usual rules, shown as on /register.
    let weak = c.submit(&path, &path, &[("username", "r"), ("email", "nope"), ("password", "short")]).await;
    assert_eq!(weak.status, 200);
    assert!(weak.body.contains("flash error") && weak.body.contains("Password must be at least 8 characters"));
    assert!(!app.services.accounts.has_admin().await.expect("count"));
    let common =
        c.submit(&path, &path, &[("username", "root"), ("email", "root@example.com"), ("password", "password")]).await;
    assert!(common.body.contains("too common"), "{}", common.body);

    let made = c.submit(&path, &path, &fields).await;
    assert_eq!(made.status, 303);
    let root = app.services.accounts.find_user("root").await.expect("made");
    assert!(root.is_admin && root.email_verified);
    assert_eq!(c.get("/admin/users").await.status, 200, "signed in as the administrator");
    assert_eq!(audit_count(&app, "setup.admin").await, 1, "audited");

    // Gone for good: the same link, read or posted, and any other.
    assert_eq!(c.get(&path).await.status, 404);
    let again = [("username", "root2"), ("email", "root2@example.com"), ("password", PW)];
    assert_eq!(c.submit("/dashboard", &path, &again).await.status, 404);
    assert!(app.services.accounts.find_user("root2").await.is_err());
    assert_eq!(app.services.accounts.open_setup().await.expect("open"), None, "no new link either");
    app.stop().await;
}

#[tokio::test]
async fn the_setup_link_is_refused_once_an_administrator_exists_or_after_an_hour() {
    let app = TestApp::spawn().await;
    let token = app.services.accounts.open_setup().await.expect("open").expect("a link");
    let c = app.client();
    assert_eq!(c.get(&format!("/setup/{token}")).await.status, 200);
    // An administrator made another way (the command line) closes the link.
    app.create_user("boss", "boss@example.com", PW, true).await;
    assert_eq!(c.get(&format!("/setup/{token}")).await.status, 404);
    app.stop().await;

    let app = TestApp::spawn().await;
    let token = app.services.accounts.open_setup().await.expect("open").expect("a link");
    let c = app.client();
    app.advance(Duration::from_secs(3599));
    assert_eq!(c.get(&format!("/setup/{token}")).await.status, 200);
    app.advance(Duration::from_secs(1));
    assert_eq!(c.get(&format!("/setup/{token}")).await.status, 404, "an hour at most");
    app.stop().await;
}

#[tokio::test]
async fn the_setup_page_is_rate_limited() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "2")]).await;
    let token = app.services.accounts.open_setup().await.expect("open").expect("a link");
    let c = app.client();
    for _ in 0..2 {
        assert_eq!(c.get(&format!("/setup/{token}")).await.status, 200);
    }
    let res = c.get(&format!("/setup/{token}")).await;
    assert_eq!(res.status, 429);
    assert!(res.header("retry-after").is_some());
    app.stop().await;
}

// ---- registering, then the first login and the dashboard ---------------------

#[tokio::test]
async fn the_browser_that_registered_is_not_a_new_browser_at_its_first_login() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let res = c
        .submit("/register", "/register", &[("username", "alice"), ("email", "alice@example.com"), ("password", PW)])
        .await;
    assert_eq!(res.status, 303);
    let outbox = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(app.services.store.pool())
            .await
            .expect("count");
        n
    };
    assert_eq!(outbox().await, 1, "the verification mail");
    assert_eq!(c.submit("/dashboard", "/logout", &[]).await.status, 303);
    assert_eq!(c.login("alice", PW, false).await.status, 303);
    assert_eq!(outbox().await, 1, "no \"new browser\" notice");

    // Another browser is new.
    assert_eq!(app.client().login("alice", PW, false).await.status, 303);
    assert_eq!(outbox().await, 2, "a notice for another browser");
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_greets_once() {
    let app = TestApp::spawn().await;
    let c = app.client();
    c.submit("/register", "/register", &[("username", "alice"), ("email", "alice@example.com"), ("password", PW)])
        .await;
    let dash = c.get("/dashboard").await;
    assert_eq!(dash.status, 200);
    assert!(!dash.body.contains("Welcome to Portcullis"), "one greeting");
    assert!(dash.body.contains("Welcome, alice!"), "the greeting the navigation and heading carry");
    assert_eq!(dash.body.matches("Welcome").count(), dash.body.matches("Welcome, alice!").count(), "one wording");
    app.stop().await;
}

// ---- the command line -----------------------------------------------------------

#[test]
fn migrate_names_what_it_applied_or_that_none_were_pending() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let (code, _, err) = run(&data, &["migrate"], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("migration(s): 1 init, 2 tokens outbox"), "{err}");
    let (code, _, err) = run(&data, &["migrate"], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no migrations pending"), "{err}");
}

#[test]
fn user_create_without_a_terminal_or_the_flag_says_why_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut child = command(&data)
        .env("PORTCULLIS_LOG", "warn")
        .args(["user", "create", "--username", "root", "--email", "root@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Standard input stays open: the command must not wait on it.
    let _input = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "waited silently for standard input");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--password-stdin"), "{err}");
    let (_, out, _) = run(&data, &["user", "list"], None);
    assert!(out.trim().is_empty(), "no user: {out}");
}

/// `user create …` on a pseudo-terminal (util-linux `script`), answering
/// each prompt with the next of `answers` once it appears: exit code and
/// everything the terminal showed.
fn create_on_a_terminal(data: &Path, answers: &[&str]) -> (i32, String) {
    let script = "/usr/bin/script";
    assert!(Path::new(script).exists(), "util-linux `script` makes the pseudo-terminal");
    let line = format!(
        "'{}' user create --username root --email root@example.com --admin --verified",
        env!("CARGO_BIN_EXE_portcullis")
    );
    let mut child = command_of(script, data)
        .env("PORTCULLIS_LOG", "warn")
        .env("SHELL", "/bin/sh")
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "dumb")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut input = child.stdin.take().expect("stdin");
    let mut shown = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (prompts, answer) in answers.iter().enumerate() {
        // Each answer goes once its prompt is on the screen.
        while shown.matches("Password: ").count() + shown.matches("Password (again): ").count() <= prompts {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no prompt; the terminal showed {shown:?}"));
            shown.push_str(&String::from_utf8_lossy(&chunk));
        }
        // The prompt is written just before echo goes off.
        std::thread::sleep(Duration::from_millis(100));
        input.write_all(format!("{answer}\n").as_bytes()).expect("type");
        input.flush().expect("flush");
    }
    let status = loop {
        while let Ok(chunk) = rx.try_recv() {
            shown.push_str(&String::from_utf8_lossy(&chunk));
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "still running; the terminal showed {shown:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(input);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        shown.push_str(&String::from_utf8_lossy(&chunk));
    }
    (status.code().unwrap_or(-1), shown)
}

#[test]
fn user_create_on_a_terminal_asks_twice_with_echo_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    // A mismatch, then a password the policy refuses, then a good pair.
    let answers = [PW, "something else entirely", "short", PW, PW];
    let (code, shown) = create_on_a_terminal(&data, &answers);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("Password (again): "), "asked twice: {shown}");
    assert!(shown.contains("do not match"), "{shown}");
    assert!(shown.contains("at least 8 characters"), "{shown}");
    assert!(shown.contains("created user root"), "{shown}");
    assert!(!shown.contains(PW) && !shown.contains("something else"), "echo off: {shown}");
    let (_, out, _) = run(&data, &["user", "list"], None);
    assert!(out.contains("root") && out.contains("admin=true") && out.contains("verified=true"), "{out}");

    // A taken name is refused before any password is asked for.
    let (code, shown) = create_on_a_terminal(&data, &[]);
    assert_ne!(code, 0, "{shown}");
    assert!(shown.contains("Username already exists") && !shown.contains("Password"), "{shown}");
}

#[test]
fn user_create_on_a_terminal_gives_up_after_three_mismatches() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let answers = [PW, "one thing else", PW, "two things else", PW, "three things else"];
    let (code, shown) = create_on_a_terminal(&data, &answers);
    assert_ne!(code, 0, "{shown}");
    assert_eq!(shown.matches("do not match").count(), 3, "{shown}");
    let (_, out, _) = run(&data, &["user", "list"], None);
    assert!(out.trim().is_empty(), "no user: {out}");
}
