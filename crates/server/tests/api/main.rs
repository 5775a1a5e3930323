//! API tests: the real application on a random port, against a fresh PostgreSQL database per test.
//!
//! Run with `DATABASE_URL` pointing at a server where the user may create databases (see the README).

mod chats;
mod database_faults;
mod databricks_auth;
mod deploy;
mod disconnects;
mod errors;
mod health;
mod helpers;
mod isolation;
mod lakebase;
mod limits;
mod messages;
mod migrations;
mod platform;
mod recovery;
mod security;
mod streams;
mod turns;
