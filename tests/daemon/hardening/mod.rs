//! Hostile-client tests (issue 11): each one tries, on the real daemon, what a
//! LAN attacker or a curious viewer would, and asserts it changes nothing it
//! must not. Memory cases read RSS from /proc with generous bounds, never time.
//! One module per part under attack.

mod ai;
mod conn;
mod ingest;
mod nvr;
