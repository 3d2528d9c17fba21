//! Shared by the build scripts of the packages whose tests need PostgreSQL
//! or Redis: when a service's URL is not set (and a run does not require
//! the services, as CI does), its tests are built ignored, so that
//! `cargo test` counts them as ignored, names the variable to set on each,
//! and never reports `ok` for a test that ran nothing.

/// The services, as (cfg set when missing, URL variable, example URL).
const SERVICES: [(&str, &str, &str); 2] = [
    ("portcullis_no_postgres", "PORTCULLIS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"),
    ("portcullis_no_redis", "PORTCULLIS_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
];
const REQUIRE_VAR: &str = "PORTCULLIS_TEST_REQUIRE_SERVICES";

/// Declares the cfgs and sets those of the services without a URL.
pub fn declare(warn: bool) {
    println!("cargo::rerun-if-env-changed={REQUIRE_VAR}");
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut missing = Vec::new();
    for (cfg, var, example) in SERVICES {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        let set = std::env::var(var).is_ok_and(|v| !v.is_empty());
        if !set && !required {
            println!("cargo::rustc-cfg={cfg}");
            missing.push(format!("{var}={example}"));
        }
    }
    if warn && !missing.is_empty() {
        println!(
            "cargo::warning=the PostgreSQL and Redis tests are ignored (see each test binary's \"ignored\" count); to run them set {}",
            missing.join(" ")
        );
    }
}
