//! Commands of the `pushgate` binary beyond serving, one module each.

pub mod migrate;
pub mod send;
