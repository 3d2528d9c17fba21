//! Portcullis: user accounts and sessions done right. This crate is the only
//! place that knows every concrete type: it reads the configuration, opens
//! the store, starts the server and its background work, and shuts down
//! gracefully.

pub mod backup;
pub mod config;
pub mod files;
pub mod import;
pub mod listen;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod server;
pub mod setup;
#[cfg(feature = "testing")]
pub mod testing;
