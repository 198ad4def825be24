//! Hardening of the ingest side; see main.rs.
