//! Validated values of the domain: once parsed, always valid. Shared by the
//! API, the store and delivery; imports nothing else of the crate.

pub mod cursor;
pub mod error;
pub mod filter;
pub mod ids;
pub mod json;
pub mod local_time;
pub mod names;
pub mod tags;
pub mod target;
pub mod time;
pub mod token;
pub mod version;

pub use error::{FieldError, FieldErrorKind};
pub use target::Target;
pub use token::{host_allowed, web_push_host, DeviceToken, Platform};
