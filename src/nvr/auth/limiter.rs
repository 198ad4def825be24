//! Login rate limiting: failed attempts per username and per client IP in a
//! sliding window, so neither one account nor one address can be brute-forced.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::AuthError;
use crate::clock::Clock;

/// Keys kept before old, idle ones are swept; bounds memory under a spray.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
struct Windows {
    users: HashMap<String, VecDeque<i64>>,
    ips: HashMap<IpAddr, VecDeque<i64>>,
}

/// Counts failures; `check` before verifying a password, `fail` after a miss.
pub struct LoginLimiter {
    per_user: u32,
    per_ip: u32,
    window_ms: i64,
    clock: Arc<dyn Clock>,
    w: Mutex<Windows>,
}

fn prune(q: &mut VecDeque<i64>, since: i64) {
    while q.front().is_some_and(|t| *t <= since) {
        q.pop_front();
    }
}

/// Seconds until the oldest failure in a full window leaves it; `None` when
/// the window is not full.
fn blocked_for(q: Option<&mut VecDeque<i64>>, limit: u32, since: i64) -> Option<i64> {
    let q = q?;
    prune(q, since);
    if q.len() < limit as usize {
        return None;
    }
    let oldest = *q.front()?;
    Some(((oldest - since + 999) / 1000).max(1))
}

impl LoginLimiter {
    /// A limiter allowing `per_user` / `per_ip` failures per `window_s`.
    pub fn new(per_user: u32, per_ip: u32, window_s: i64, clock: Arc<dyn Clock>) -> Self {
        Self {
            per_user,
            per_ip,
            window_ms: window_s * 1000,
            clock,
            w: Mutex::new(Windows::default()),
        }
    }

    /// Refuses when either the user or the IP has used up its failures.
    pub fn check(&self, user: &str, ip: IpAddr) -> Result<(), AuthError> {
        let now = self.clock.now_ms();
        let since = now - self.window_ms;
        let mut w = self.w.lock().unwrap_or_else(|p| p.into_inner());
        let u = blocked_for(w.users.get_mut(user), self.per_user, since);
        let i = blocked_for(w.ips.get_mut(&ip), self.per_ip, since);
        match u.max(i) {
            Some(s) => Err(AuthError::RateLimited(s)),
            None => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn fail(&self, user: &str, ip: IpAddr) {
        let now = self.clock.now_ms();
        let since = now - self.window_ms;
        let mut w = self.w.lock().unwrap_or_else(|p| p.into_inner());
        if w.users.len() + w.ips.len() > SWEEP_AT {
            w.users.retain(|_, q| q.back().is_some_and(|t| *t > since));
            w.ips.retain(|_, q| q.back().is_some_and(|t| *t > since));
        }
        w.users.entry(user.to_owned()).or_default().push_back(now);
        w.ips.entry(ip).or_default().push_back(now);
    }

    /// A successful login clears the user's failures (not the IP's).
    pub fn succeed(&self, user: &str) {
        let mut w = self.w.lock().unwrap_or_else(|p| p.into_inner());
        w.users.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn user_and_ip_limits_slide_with_the_clock() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let l = LoginLimiter::new(3, 5, 60, clock.clone());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let ip2: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.check("ann", ip).unwrap();
            l.fail("ann", ip);
            clock.advance(1_000);
        }
        let Err(AuthError::RateLimited(s)) = l.check("ann", ip2) else {
            panic!("user limit must apply from any IP");
        };
        assert!((1..=60).contains(&s), "{s}");
        // Another user from the same IP still may try, until the IP is spent.
        l.check("bob", ip).unwrap();
        l.fail("bob", ip);
        l.fail("bob", ip);
        assert!(l.check("carl", ip).is_err());
        assert!(l.check("carl", ip2).is_ok());
        // The window slides: after 60 s the oldest failures fall out.
        clock.advance(60_000);
        assert!(l.check("ann", ip2).is_ok());
        l.fail("ann", ip2);
        l.succeed("ann");
        assert!(l.check("ann", ip2).is_ok());
    }
}
