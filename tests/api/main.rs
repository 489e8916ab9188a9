//! Integration tests over real HTTP against the real router and a real
//! database (SQLite and Postgres). One binary: one link, shared helpers.

mod browser;
mod helpers;
mod identity;

mod apps;
mod deliveries;
mod devices;
mod edge;
mod groups;
mod odd_input;
mod ops;
mod pipeline;
mod provider_answers;
mod retention;
mod sending;
mod shutdown;
mod socket;
mod targeting;
