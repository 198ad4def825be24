//! Short-lived, single-use tickets for EventSource and WebSocket, which
//! cannot send an `Authorization` header from a browser.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{secret, AuthError, Principal};
use crate::clock::Clock;

/// Outstanding tickets above which expired ones are swept.
const SWEEP_AT: usize = 1_000;

/// The issued tickets, in memory (a restart invalidates them, harmlessly).
pub struct Tickets {
    ttl_ms: i64,
    clock: Arc<dyn Clock>,
    map: Mutex<HashMap<String, (Principal, i64)>>,
}

impl Tickets {
    /// Tickets valid for `ttl_s` seconds.
    pub fn new(ttl_s: i64, clock: Arc<dyn Clock>) -> Self {
        Self {
            ttl_ms: ttl_s * 1000,
            clock,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a ticket that stands for `who` once, within the TTL.
    pub fn issue(&self, who: &Principal) -> String {
        let now = self.clock.now_ms();
        let t = secret::random_hex(24);
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= SWEEP_AT {
            m.retain(|_, (_, exp)| *exp > now);
        }
        let mut p = who.clone();
        p.via = "ticket";
        m.insert(t.clone(), (p, now + self.ttl_ms));
        t
    }

    /// Consumes a ticket: valid once, and only before it expires.
    pub fn redeem(&self, ticket: &str) -> Result<Principal, AuthError> {
        let now = self.clock.now_ms();
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match m.remove(ticket) {
            Some((p, exp)) if exp > now => Ok(p),
            Some(_) => Err(AuthError::Expired),
            None => Err(AuthError::InvalidToken),
        }
    }

    /// Seconds a ticket lives, for the issue answer.
    pub fn ttl_s(&self) -> i64 {
        self.ttl_ms / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::nvr::store::Role;

    #[test]
    fn tickets_are_single_use_and_expire() {
        let clock = Arc::new(ManualClock::new(0));
        let t = Tickets::new(30, clock.clone());
        let who = Principal {
            user_id: 1,
            username: "ann".into(),
            role: Role::Viewer,
            via: "jwt",
            credential: crate::nvr::auth::Credential::ApiToken { id: 3 },
        };
        let a = t.issue(&who);
        let p = t.redeem(&a).unwrap();
        assert_eq!(p.via, "ticket");
        assert_eq!(
            p.credential, who.credential,
            "a ticket carries its credential"
        );
        assert!(t.redeem(&a).is_err(), "second use");
        let b = t.issue(&who);
        clock.advance(30_000);
        assert!(matches!(t.redeem(&b), Err(AuthError::Expired)));
        assert!(t.redeem("nope").is_err());
    }
}
