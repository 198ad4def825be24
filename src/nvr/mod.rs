//! The NVR core (port 8000): the SQLite store, users and tokens, cameras,
//! the recordings index, and the event log with its live stream.
//!
//! `store` owns persistence (one writer task), `auth` owns identity and
//! limits, `web` maps both to HTTP, `live` is the seam through which the
//! camera pipeline reports its counters. `cmd/run.rs` wires them together.

pub(crate) mod auth;
pub mod live;
pub mod store;
pub mod web;

/// Argon2 password hashing as `user add` stores it (in-process tests seed users with it).
pub use auth::password::hash as hash_password;
pub use web::{router, NvrState};
