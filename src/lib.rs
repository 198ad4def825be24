//! opennvr-edge: a network video recorder with on-device AI.
//!
//! See `ARCHITECTURE.md` at the repository root for the map. Modules are
//! `pub` only where the binary, the tests or the benches need them, so the
//! compiler reports what nothing uses.

pub mod ai;
pub mod api;
pub mod backoff;
pub mod catalog;
pub mod clock;
pub mod cmd;
pub mod config;
pub(crate) mod confine;
pub mod console;
pub(crate) mod frame;
pub mod hw;
pub mod ingest;
pub(crate) mod metrics;
pub(crate) mod mqtt;
pub mod nvr;
pub(crate) mod paths;
pub(crate) mod redact;
pub(crate) mod serve;
pub(crate) mod slots;
pub(crate) mod source_url;
pub(crate) mod tracker;
#[cfg(test)]
mod walls;
