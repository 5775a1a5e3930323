//! API tests: the real application on a random port, against a fresh PostgreSQL database per test.
//!
//! Run with `DATABASE_URL` pointing at a server where the user may create databases (see the README).

mod agents;
mod approvals;
mod background;
mod branches;
mod chats;
mod compression;
mod context;
mod database_faults;
mod databricks_auth;
mod deploy;
mod disconnects;
mod edge_input;
mod errors;
mod export;
mod feedback;
mod health;
mod helpers;
mod isolation;
mod lakebase;
mod limits;
#[cfg(feature = "local-model")]
mod local_model;
mod mcp;
mod messages;
mod migrations;
mod openapi;
mod platform;
mod recovery;
mod request_limits;
mod security;
mod shares;
mod streams;
mod titles;
mod tools;
mod turns;
