//! Integration tests over real HTTP against the real router and a real
//! database (SQLite and Postgres). One binary: one link, shared helpers.

mod browser;
mod helpers;
mod identity;
mod process;

mod apps;
mod batch;
mod console_browser;
mod deliveries;
mod demo_browser;
mod devices;
mod edge;
mod groups;
mod migrate_command;
mod notification_list;
mod odd_input;
mod ops;
mod pipeline;
mod provider_answers;
mod retention;
mod send_command;
mod sending;
mod shutdown;
mod socket;
mod stats;
mod targeting;
mod web_push;
mod webhooks;
