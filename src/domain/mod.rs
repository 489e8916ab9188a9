//! Validated values of the domain: once parsed, always valid.

pub mod cursor;
pub mod ids;
pub mod names;
pub mod time;
pub mod token;

pub use token::{DeviceToken, Platform};
