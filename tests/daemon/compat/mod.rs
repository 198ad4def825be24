//! Drop-in compatibility with OpenNVR's own clients and the DeepStack
//! ecosystem (issue 13): each test sends what a client sends, on the real
//! models and the real daemon, and checks the fields that client reads. No
//! upstream code: the requests are described in our own words.
//!
//! One module per family of clients.

mod deepstack;
mod legacy;
mod nvr;
mod v1;
