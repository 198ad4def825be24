//! The bounds port 8000 holds every client to, from `[nvr]` in the config:
//! one value built at wiring time, so the handlers read them in one place.

use std::time::Duration;

use crate::config::NvrConfig;
use crate::nvr::auth::HashGate;

/// What a client of the NVR core can make us spend, at most.
pub struct Limits {
    /// Concurrent password checks (Argon2id holds ~19 MiB each).
    pub hashing: HashGate,
    /// Largest stored event `payload`, bytes of JSON.
    pub max_event_payload: usize,
    /// About the most JSON one page of events may carry.
    pub max_list_bytes: usize,
    /// Largest WebSocket message or frame a stream client may send.
    pub ws_max_message: usize,
    /// How often an open stream re-checks its token.
    pub stream_recheck: Duration,
    /// Most users the users API lets exist.
    pub max_users: usize,
}

impl Limits {
    /// The limits `[nvr]` asks for (zero values are raised to a working minimum).
    pub fn new(c: &NvrConfig) -> Self {
        Self {
            hashing: HashGate::new(
                c.login_hash_concurrency,
                Duration::from_millis(c.login_hash_wait_ms),
            ),
            max_event_payload: c.max_event_payload_bytes,
            max_list_bytes: c.max_list_bytes.max(1),
            ws_max_message: c.ws_max_message_bytes.max(256),
            stream_recheck: Duration::from_secs(c.stream_recheck_s.max(1)),
            max_users: c.max_users.max(1),
        }
    }
}
