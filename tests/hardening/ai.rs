//! Hardening of the ai side; see main.rs.
