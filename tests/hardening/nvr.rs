//! Hardening of the nvr side; see main.rs.
