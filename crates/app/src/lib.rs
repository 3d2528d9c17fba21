//! What Portcullis does: accounts, sessions, posts and administration, as use
//! cases over ports (traits) that the store implements. No HTTP, no SQL here.

pub mod access_tokens;
pub mod accounts;
pub mod audit;
pub mod clock;
pub mod error;
pub mod hashing;
pub mod import;
pub mod limits;
pub mod mail;
pub mod meter;
pub mod model;
pub mod overview;
pub mod passkey_store;
pub mod ports;
pub mod posts;
pub mod settings;
pub mod tokens;

pub use accounts::Accounts;
pub use audit::Origin;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AppError, FieldErrors, StoreError};
pub use hashing::{HashPool, PoolBusy};
pub use model::{ClientInfo, NewToken, NewUser, Post, Session, SignedIn, TokenPurpose, TokenRecord, User, UserSummary};
pub use ports::{LoginThrottle, OutboxStore, PostStore, SessionStore, TokenStore, TwoFactorStore, UserStore};
pub use posts::Posts;
pub use settings::{Argon2Settings, AuthSettings};
