//! Integration tests over real HTTP against the real router and a real
//! database (SQLite and Postgres). One binary: one link, shared helpers.

mod helpers;

mod apps;
mod deliveries;
mod devices;
mod groups;
mod ops;
mod pipeline;
mod provider_answers;
mod retention;
mod sending;
mod shutdown;
mod socket;
