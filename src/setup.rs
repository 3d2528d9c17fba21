//! What `serve` tells its operator while no administrator exists: the
//! one-time setup link, and the command that makes an administrator, written
//! the way this process was started so that it works when pasted.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::server::{Services, StartError};

/// Opens the setup link when no administrator exists and logs it with the
/// command-line way; says nothing once an administrator exists.
pub async fn announce(config: &Config, services: &Services) -> Result<(), StartError> {
    let Some(token) = services.accounts.open_setup().await.map_err(|e| StartError::Other(e.to_string()))? else {
        return Ok(());
    };
    let base = config.base_url.as_str().trim_end_matches('/');
    let ttl = humantime::format_duration(portcullis_app::accounts::SETUP_TTL);
    tracing::warn!(
        "no administrator yet; create one in the browser at {base}/setup/{token} (works once, for {ttl}, on this server)"
    );
    tracing::warn!(
        "or on the command line: {} user create --username admin --email admin@example.com --admin --verified",
        launcher(|k| std::env::var_os(k), std::env::current_exe().ok())
    );
    Ok(())
}

/// How to run this program again from a shell: `cargo run … --` under
/// `cargo run` (cargo sets `CARGO` and `CARGO_PKG_NAME` for the program it
/// runs), else the executable's real path.
fn launcher(var: impl Fn(&str) -> Option<OsString>, exe: Option<PathBuf>) -> String {
    let exe = exe.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    let under_cargo = var("CARGO").is_some() && var("CARGO_PKG_NAME").is_some_and(|n| n == "portcullis");
    match exe {
        Some(exe) if !under_cargo => quoted(&exe.display().to_string()),
        Some(exe) => format!("cargo run{} --", profile_flag(&exe)),
        None if under_cargo => "cargo run --".to_owned(),
        None => "portcullis".to_owned(),
    }
}

/// The `cargo run` flag for the profile an executable was built with, read
/// from its directory (`target/debug`, `target/release`, `target/<name>`).
fn profile_flag(exe: &Path) -> String {
    match exe.parent().and_then(Path::file_name).and_then(|n| n.to_str()) {
        Some("release") => " --release".to_owned(),
        Some("debug") | None => String::new(),
        Some(name) => format!(" --profile {}", quoted(name)),
    }
}

/// `s` as one shell word.
fn quoted(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,=@".contains(c);
    if !s.is_empty() && s.chars().all(plain) { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    }

    const CARGO: &[(&str, &str)] = &[("CARGO", "/usr/bin/cargo"), ("CARGO_PKG_NAME", "portcullis")];

    #[test]
    fn under_cargo_the_cargo_run_form_with_the_profile() {
        let exe = |p: &str| Some(PathBuf::from(p));
        assert_eq!(launcher(env(CARGO), exe("/src/target/release/portcullis")), "cargo run --release --");
        assert_eq!(launcher(env(CARGO), exe("/src/target/debug/portcullis")), "cargo run --");
        assert_eq!(launcher(env(CARGO), exe("/src/target/fast/portcullis")), "cargo run --profile fast --");
        assert_eq!(launcher(env(CARGO), None), "cargo run --");
    }

    #[test]
    fn otherwise_the_executable_path_as_one_shell_word() {
        let exe = |p: &str| Some(PathBuf::from(p));
        assert_eq!(launcher(env(&[]), exe("/opt/portcullis/bin/portcullis")), "/opt/portcullis/bin/portcullis");
        assert_eq!(launcher(env(&[]), exe("/opt/my apps/portcullis")), "'/opt/my apps/portcullis'");
        assert_eq!(launcher(env(&[("CARGO", "/usr/bin/cargo"), ("CARGO_PKG_NAME", "other")]), exe("/x/p")), "/x/p");
        assert_eq!(launcher(env(&[]), None), "portcullis");
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }
}
