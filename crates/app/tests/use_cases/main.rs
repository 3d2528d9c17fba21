//! The use cases over in-memory ports on a clock the tests move: lockout,
//! session timeouts, token lifetimes, rate-limit windows, retention and
//! mail retries, each run past its edge without waiting for it.

mod account_checks;
mod lockout;
mod mail_limits;
mod memory;
mod quiet_failures;
mod sessions;
mod tokens;
mod two_factor;
mod windows;
mod world;
