//! Werkzeug hashes made by Werkzeug itself (see fixtures/make_werkzeug_hashes.py
//! and the version recorded in the fixture) verify, and are marked for upgrade.

use portcullis_app::hashing::werkzeug;
use portcullis_app::{Argon2Settings, HashPool};

fn fixtures() -> Vec<(String, String, String)> {
    let text = include_str!("fixtures/werkzeug_hashes.json");
    let v: serde_json::Value = serde_json::from_str(text).expect("fixture is JSON");
    assert!(v["werkzeug_version"].as_str().is_some_and(|s| s.starts_with('3')), "made by Werkzeug 3");
    v["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| {
            (
                h["method"].as_str().expect("method").to_owned(),
                h["password"].as_str().expect("password").to_owned(),
                h["hash"].as_str().expect("hash").to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_werkzeug_fixture_verifies_and_rejects_a_wrong_password() {
    let all = fixtures();
    assert!(all.iter().any(|(m, ..)| m.starts_with("pbkdf2:sha256")));
    assert!(all.iter().any(|(m, ..)| m.starts_with("scrypt")));
    assert!(all.iter().any(|(_, p, _)| p.chars().count() == 256));
    assert!(all.iter().any(|(_, p, _)| !p.is_ascii()));
    for (method, password, hash) in &all {
        assert_eq!(werkzeug::verify(password, hash), Some(true), "{method}: {password:?}");
        let wrong = format!("{password}!");
        assert_eq!(werkzeug::verify(&wrong, hash), Some(false), "{method}: wrong password accepted");
    }
}

#[test]
fn tampered_werkzeug_hashes_fail() {
    let (_, password, hash) =
        fixtures().into_iter().find(|(m, ..)| m == "pbkdf2:sha256:1000").expect("low-round fixture");
    let mut bad = hash.clone();
    let last = bad.pop().expect("non-empty");
    bad.push(if last == '0' { '1' } else { '0' });
    assert_eq!(werkzeug::verify(&password, &bad), Some(false));
    let other_salt = hash.replacen('$', "$x", 1);
    assert_eq!(werkzeug::verify(&password, &other_salt), Some(false));
    assert_eq!(werkzeug::verify(&password, "md5$abc$def"), None);
}

#[tokio::test]
async fn the_pool_verifies_werkzeug_hashes_and_asks_for_a_rehash() {
    let pool = HashPool::new(Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 }, 2, 8).expect("pool");
    for (method, password, hash) in fixtures() {
        let v = pool.verify(&password, &hash).await.expect("verify");
        assert!(v.ok && v.needs_rehash, "{method}");
    }
}
