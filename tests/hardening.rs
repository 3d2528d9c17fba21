//! What holds against a client that is slow on purpose, greedy with
//! connections, lies in `X-Forwarded-For` or probes mail links, and against
//! another user of the machine reading the data directory: each over a real
//! socket against a running server.

use std::time::{Duration, Instant};

use portcullis::testing::{SmtpSink, TestApp, TestClient, find_link};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const PW: &str = "correct horse battery staple";

/// What a raw connection got: the bytes read, and whether the server closed
/// it (end of stream or reset) before `deadline`.
struct Read {
    bytes: Vec<u8>,
    closed: bool,
}

impl Read {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads from `stream` until the server closes it or `deadline` passes.
async fn read_until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin), deadline: Instant) -> Read {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return Read { bytes, closed: false },
            Ok(Ok(0) | Err(_)) => return Read { bytes, closed: true },
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response (head and `Content-Length` body) from a kept-alive
/// connection, by `deadline`.
async fn read_response(stream: &mut TcpStream, deadline: Instant) -> String {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return text;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            other => panic!("no whole response by the deadline ({other:?}): {text:?}"),
        }
    }
}

/// Writes `bytes` one at a time, every 500 ms, until done or the peer is gone.
fn dribble(mut write: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for b in bytes {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if write.write_all(&[b]).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test]
async fn a_slow_body_is_cut_at_the_request_timeout() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_REQUEST_TIMEOUT", "1s")]).await;
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let body = format!("username=alice&password=wrong&csrf_token={}", "x".repeat(100));
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    write.write_all(head.as_bytes()).await.expect("send the head");
    let sent = Instant::now();
    let dribbler = dribble(write, body.into_bytes());
    let got = read_until_closed(&mut read, sent + Duration::from_secs(3)).await;
    let took = sent.elapsed();
    dribbler.abort();
    assert!(got.text().starts_with("HTTP/1.1 408"), "answered 408: {:?}", got.text());
    assert!(got.closed, "and the connection is closed");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "after {took:?}");
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_at_the_header_timeout() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_HEADER_TIMEOUT", "1s")]).await;
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    write.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n", app.addr).as_bytes()).await.expect("send");
    let sent = Instant::now();
    let dribbler = dribble(write, b"X-Slow: ".repeat(20));
    let got = read_until_closed(&mut read, sent + Duration::from_secs(3)).await;
    let took = sent.elapsed();
    dribbler.abort();
    assert!(got.closed, "the connection is closed: {:?}", got.text());
    assert!(!got.text().contains("200 OK"), "no page served: {:?}", got.text());
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "after {took:?}");

    // A kept-alive connection that sends nothing more is closed in the same time.
    let mut idle = TcpStream::connect(app.addr).await.expect("connect");
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr).as_bytes()).await.expect("send");
    let answered = read_response(&mut idle, Instant::now() + Duration::from_secs(3)).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let since = Instant::now();
    let got = read_until_closed(&mut idle, since + Duration::from_secs(3)).await;
    assert!(got.closed && got.bytes.is_empty(), "closed without a word: {:?}", got.text());
    assert!(since.elapsed() < Duration::from_millis(2500), "after {:?}", since.elapsed());
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_and_the_others_served() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_MAX_CONNECTIONS", "3")]).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(app.addr).await.expect("connect");
        c.write_all(request.as_bytes()).await.expect("send");
        assert!(read_response(&mut c, deadline).await.starts_with("HTTP/1.1 200"));
        held.push(c);
    }

    // The fourth is closed at once, unanswered.
    let mut extra = TcpStream::connect(app.addr).await.expect("the kernel accepts it");
    let _ = extra.write_all(request.as_bytes()).await;
    let since = Instant::now();
    let got = read_until_closed(&mut extra, since + Duration::from_secs(2)).await;
    assert!(got.closed && got.bytes.is_empty(), "refused: {:?}", got.text());
    assert!(since.elapsed() < Duration::from_millis(500), "quickly: {:?}", since.elapsed());

    // Those under the cap are still served.
    held[0].write_all(request.as_bytes()).await.expect("send");
    assert!(read_response(&mut held[0], deadline).await.starts_with("HTTP/1.1 200"));

    // Once one closes, a new client gets pages again.
    drop(held.pop());
    let status = loop {
        let fresh = TestClient::new(format!("http://{}", app.addr));
        let tried = tokio::time::timeout(Duration::from_secs(1), fresh.get("/login")).await;
        match tried {
            Ok(res) if res.status == 200 => break res.status,
            _ if Instant::now() > deadline => panic!("no slot came free"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(status, 200);
}

/// POSTs a wrong login as the client a trusted proxy names in `forwarded`.
async fn login_as_forwarded(c: &TestClient, forwarded: &str) -> u16 {
    let token = c.get("/login").await.csrf_token().expect("token");
    let body = format!("username=nobody&password=wrong+one&csrf_token={token}");
    c.send(reqwest::Method::POST, "/login", Some(body), &[("x-forwarded-for", forwarded)]).await.status
}

#[tokio::test]
async fn an_unparsable_forwarded_entry_ends_the_walk() {
    let vars = [("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "2"), ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.0/8")];
    let app = TestApp::spawn_with(&vars).await;
    let c = app.client();
    // Left of the garbage is the client's own text: it does not name the
    // client, so all four count as the proxy.
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(login_as_forwarded(&c, &format!("198.51.100.{i}, not-an-address")).await);
    }
    assert_eq!(statuses, vec![200, 200, 429, 429]);

    // Right of the garbage, an address a trusted proxy wrote still names the client.
    let app = TestApp::spawn_with(&vars).await;
    let c = app.client();
    for i in 0..4 {
        assert_eq!(login_as_forwarded(&c, &format!("not-an-address, 198.51.100.{i}")).await, 200, "client {i}");
    }
}

#[tokio::test]
async fn ipv6_clients_in_one_64_share_a_rate_limit() {
    let vars = [("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "2"), ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.0/8")];
    let app = TestApp::spawn_with(&vars).await;
    let c = app.client();
    let mut statuses = Vec::new();
    for host in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::2", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"] {
        statuses.push(login_as_forwarded(&c, host).await);
    }
    assert_eq!(statuses, vec![200, 200, 429], "one count for the /64");
    assert_eq!(login_as_forwarded(&c, "2001:db8:1:3::1").await, 200, "another /64 has its own");
    assert_eq!(login_as_forwarded(&c, "203.0.113.1").await, 200);
    assert_eq!(login_as_forwarded(&c, "203.0.113.2").await, 200, "IPv4 clients are counted each");
}

/// The path of a link in a mail, from `start` on.
fn path_of(link: &str, start: &str) -> String {
    link[link.find(start).expect("the path")..].to_owned()
}

#[tokio::test]
async fn head_on_a_mail_link_changes_nothing() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(&[("PORTCULLIS_SMTP_URL", url.as_str())]).await;
    let c = app.client();
    let res = c
        .submit("/register", "/register", &[("username", "alice"), ("email", "alice@example.com"), ("password", PW)])
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let mail = sink.wait_for(1, 10).await.join("\n");
    let link = path_of(&find_link(&mail, "/verify-email/").expect("verification link"), "/verify-email/");

    let head = c.send(reqwest::Method::HEAD, &link, None, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{:?}", head.headers);
    assert_eq!(head.location(), None, "no redirect");
    assert!(!app.services.accounts.find_user("alice").await.expect("user").email_verified, "still unverified");

    let get = c.get(&link).await;
    assert_eq!(get.status, 303, "the link still works: {}", get.body);
    assert!(app.services.accounts.find_user("alice").await.expect("user").email_verified);

    // The reset link too: HEAD spends nothing, the form still sets the password.
    c.submit("/forgot-password", "/forgot-password", &[("email", "alice@example.com")]).await;
    let mail = sink.wait_for(2, 10).await.join("\n");
    let reset = path_of(&find_link(&mail, "/reset-password/").expect("reset link"), "/reset-password/");
    let head = c.send(reqwest::Method::HEAD, &reset, None, &[]).await;
    assert_eq!((head.status, head.header("referrer-policy")), (200, Some("no-referrer")));
    let res = c.submit(&reset, &reset, &[("password", "a completely new passphrase")]).await;
    assert_eq!(res.status, 303, "{}", res.body);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn files_at_rest_are_private() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let app = TestApp::spawn_in(&data, &[]).await;
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&data.join("secret.key")), 0o600);
    assert_eq!(mode(&data.join("outbox")), 0o700);
    let db = data.join("portcullis.db");
    assert_eq!(mode(&db), 0o600, "the database");
    for suffix in ["-wal", "-shm"] {
        let side = data.join(format!("portcullis.db{suffix}"));
        assert!(side.exists(), "{} exists in WAL mode", side.display());
        assert_eq!(mode(&side), 0o600, "{}", side.display());
    }

    let res = app
        .client()
        .submit("/register", "/register", &[("username", "alice"), ("email", "alice@example.com"), ("password", PW)])
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mail = loop {
        let found = std::fs::read_dir(data.join("outbox"))
            .expect("outbox")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "eml"));
        match found {
            Some(p) => break p,
            None if Instant::now() > deadline => panic!("no mail written"),
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(mode(&mail), 0o600, "a mail with a live link: {}", mail.display());
    app.stop().await;
}

#[cfg(unix)]
#[test]
fn a_loose_data_directory_is_named_in_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("migrate")
            .env_clear()
            .env("PORTCULLIS_DATA_DIR", &data)
            .env("PORTCULLIS_LOG", "warn")
            .current_dir(root.path())
            .output()
            .expect("run portcullis migrate");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let logs = run();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
    let named = format!("{} has mode 755", data.display());
    assert_eq!(warnings.len(), 1, "one line: {logs}");
    assert!(warnings[0].contains(&named), "names the path and its mode: {logs}");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let logs = run();
    assert!(!logs.contains("WARN"), "nothing to say once it is private: {logs}");
}

/// A refused check of a signed-in user's current password (over the
/// allowance, or the account locked) answers only after a moment, so a
/// flood of them from a few accounts cannot take the server's time from
/// others' sign-ins; a check that runs answers as usual.
#[tokio::test]
async fn refused_account_page_checks_answer_after_a_pause() {
    let app =
        TestApp::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "2"), ("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "4")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let token = c.get("/account").await.csrf_token().expect("token");
    let delay = portcullis_web::context::REFUSAL_DELAY;
    let attempt = || async {
        let started = Instant::now();
        let res = c.post_form("/account/delete", &[("current_password", "wrong guess"), ("csrf_token", &token)]).await;
        (res.status, res.location().map(str::to_owned), started.elapsed())
    };
    // Two wrong passwords: checked, answered, the second locks.
    for _ in 0..2 {
        let (status, _, _) = attempt().await;
        assert_eq!(status, 303);
    }
    // Locked: refused unchecked, after the pause.
    let (status, location, took) = attempt().await;
    assert_eq!((status, location.as_deref()), (303, Some("/account")));
    assert!(took >= delay, "a locked account's refusal took {took:?}");
    assert!(c.get("/account").await.body.contains("temporarily locked"));
    // The fourth attempt of the minute is still allowed (and locked); the
    // fifth is over the allowance: 429, after the pause.
    let (status, _, took) = attempt().await;
    assert_eq!(status, 303);
    assert!(took >= delay, "a locked account's refusal took {took:?}");
    let (status, _, took) = attempt().await;
    assert_eq!(status, 429);
    assert!(took >= delay, "a 429 took {took:?}");
    assert!(app.services.accounts.user(alice.id).await.is_ok(), "nothing was deleted");
}
