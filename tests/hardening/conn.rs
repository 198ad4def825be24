//! Hardening of the conn side; see main.rs.
