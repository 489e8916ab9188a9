//! Delivery: fan-out of a send into per-device deliveries, workers, retries.

pub mod credentials;
