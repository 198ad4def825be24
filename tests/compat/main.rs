//! OpenNVR's own clients and the DeepStack ecosystem against the real
//! daemon (issue 13): each test sends what a client sends and reads what it
//! reads, in our own words, on the real models.
//!
//! One test binary, one module per family of clients.

#[path = "../common/mod.rs"]
mod common;

mod deepstack;
mod v1;
