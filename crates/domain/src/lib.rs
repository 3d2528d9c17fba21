//! Portcullis's words and rules: values parsed once at the edge and valid ever
//! after, and the decisions that need no IO. No async, no framework, no SQL.

pub mod email;
pub mod import;
pub mod lockout;
pub mod password;
pub mod policy;
pub mod post;
pub mod redirect;
pub mod totp;
pub mod username;

pub use email::{Email, EmailError};
pub use lockout::{DeviceClaim, LockoutRule};
pub use password::{Password, PasswordError, PasswordPolicy};
pub use policy::Actor;
pub use post::{PostContent, PostError, PostTitle};
pub use redirect::safe_next;
pub use username::{Username, UsernameError};
pub mod access_token;
pub mod scope;
pub use scope::{Need, Scope};
