//! Failed logins record and count a name nobody has by a keyed hash, never
//! as the text typed (often a password typed into the wrong box).

use portcullis_app::{AppError, AuthSettings, ClientInfo, Origin};

use crate::world::{PW, World};

#[tokio::test]
async fn a_name_nobody_has_is_kept_only_as_a_keyed_hash() {
    let w = World::new(AuthSettings { lockout_threshold: 2, ..AuthSettings::default() });
    w.user("alice").await;
    let origin = Origin::user(&ClientInfo::default());
    let typed = "  My-Secret-Passphrase ";
    for _ in 0..3 {
        let r = w.accounts.authenticate(typed, "anything at all", None, &origin).await;
        assert!(matches!(r, Err(AppError::InvalidCredentials | AppError::Locked)), "{r:?}");
    }
    let r = w.accounts.authenticate(typed, "anything at all", None, &origin).await;
    assert!(matches!(r, Err(AppError::Locked)), "names nobody has still lock: {r:?}");

    let events: Vec<_> = w.store.audit_events().into_iter().filter(|e| e.kind.starts_with("login.")).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["login.failure", "login.failure", "login.lockout", "login.locked", "login.locked"]);
    for e in &events {
        let all = format!("{:?} {:?} {:?}", e.subject, e.detail, e.user_agent).to_lowercase();
        assert!(!all.contains("secret"), "the text typed is not recorded: {all}");
        assert_eq!(e.subject.as_deref(), Some("unknown identifier"));
        let hash = e.detail.as_deref().and_then(|d| d.strip_prefix("identifier ")).expect("a keyed hash");
        assert_eq!(hash.len(), 32);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    }
    let keys = w.store.counter_keys();
    assert!(keys.iter().all(|k| !k.to_lowercase().contains("secret")), "{keys:?}");
    let hash = events[0].detail.as_deref().and_then(|d| d.strip_prefix("identifier ")).unwrap_or_default();
    assert!(keys.contains(&format!("name:{hash}")), "the counter is named by the same hash: {keys:?}");

    // The same name in other case and spacing is the same counter.
    let r = w.accounts.authenticate("my-secret-passphrase", "x", None, &origin).await;
    assert!(matches!(r, Err(AppError::Locked)), "{r:?}");

    // A known account's failures still say whose they were.
    let r = w.accounts.authenticate("alice", "not the password", None, &origin).await;
    assert!(matches!(r, Err(AppError::InvalidCredentials)), "{r:?}");
    let last = w.store.audit_events().pop().expect("event");
    assert_eq!(last.subject.as_deref(), Some("alice"));
    w.sign_in("alice", PW, false).await.expect("alice still signs in");
}
