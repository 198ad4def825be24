//! Login rate limiting: attempts per username and per client IP in a
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

/// Counts login attempts. An attempt is reserved (counted) BEFORE its
/// password is checked, so a burst of simultaneous logins can never check
/// more passwords than the limit; a successful login gives its slot back.
pub struct LoginLimiter {
    per_user: u32,
    per_ip: u32,
    window_ms: i64,
    clock: Arc<dyn Clock>,
    w: Mutex<Windows>,
}

/// A counted attempt, handed back to [`LoginLimiter::succeed`] or
/// [`LoginLimiter::give_back`]; dropping it leaves it counted as a failure.
#[derive(Debug)]
pub struct Attempt {
    user: String,
    ip: IpAddr,
    at: i64,
}

fn prune(q: &mut VecDeque<i64>, since: i64) {
    while q.front().is_some_and(|t| *t <= since) {
        q.pop_front();
    }
}

/// Seconds until the oldest attempt in a full window leaves it; `None` when
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

/// Removes one entry equal to `at` (the attempt's own) from `q`.
fn remove_one(q: Option<&mut VecDeque<i64>>, at: i64) {
    if let Some(q) = q {
        if let Some(i) = q.iter().rposition(|t| *t == at) {
            q.remove(i);
        }
    }
}

impl LoginLimiter {
    /// A limiter allowing `per_user` / `per_ip` attempts per `window_s`.
    pub fn new(per_user: u32, per_ip: u32, window_s: i64, clock: Arc<dyn Clock>) -> Self {
        Self {
            per_user,
            per_ip,
            window_ms: window_s * 1000,
            clock,
            w: Mutex::new(Windows::default()),
        }
    }

    /// Counts an attempt for `user` from `ip`, or refuses (nothing counted)
    /// when either has used up its window. Check and count are one step
    /// under the lock: concurrent logins cannot all pass the check.
    pub fn reserve(&self, user: &str, ip: IpAddr) -> Result<Attempt, AuthError> {
        let now = self.clock.now_ms();
        let since = now - self.window_ms;
        let mut w = self.w.lock().unwrap_or_else(|p| p.into_inner());
        let u = blocked_for(w.users.get_mut(user), self.per_user, since);
        let i = blocked_for(w.ips.get_mut(&ip), self.per_ip, since);
        if let Some(s) = u.max(i) {
            return Err(AuthError::RateLimited(s));
        }
        if w.users.len() + w.ips.len() > SWEEP_AT {
            w.users.retain(|_, q| q.back().is_some_and(|t| *t > since));
            w.ips.retain(|_, q| q.back().is_some_and(|t| *t > since));
        }
        w.users.entry(user.to_owned()).or_default().push_back(now);
        w.ips.entry(ip).or_default().push_back(now);
        Ok(Attempt {
            user: user.to_owned(),
            ip,
            at: now,
        })
    }

    /// The password matched: the user's failures up to this attempt are
    /// cleared and the attempt's slot on the IP is given back (the IP's
    /// failures stay). Attempts reserved after this one, still being checked,
    /// stay counted: a login during a guessing burst frees no extra guesses.
    pub fn succeed(&self, a: Attempt) {
        let mut w = self.w.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = w.users.get_mut(&a.user) {
            q.retain(|t| *t > a.at);
            if q.is_empty() {
                w.users.remove(&a.user);
            }
        }
        remove_one(w.ips.get_mut(&a.ip), a.at);
    }

    /// No password was checked (the server was too busy): uncount the attempt.
    pub fn give_back(&self, a: Attempt) {
        let mut w = self.w.lock().unwrap_or_else(|p| p.into_inner());
        remove_one(w.users.get_mut(&a.user), a.at);
        remove_one(w.ips.get_mut(&a.ip), a.at);
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
            drop(l.reserve("ann", ip).unwrap());
            clock.advance(1_000);
        }
        let Err(AuthError::RateLimited(s)) = l.reserve("ann", ip2) else {
            panic!("user limit must apply from any IP");
        };
        assert!((1..=60).contains(&s), "{s}");
        // Another user from the same IP still may try, until the IP is spent.
        drop(l.reserve("bob", ip).unwrap());
        drop(l.reserve("bob", ip).unwrap());
        assert!(l.reserve("carl", ip).is_err());
        assert!(l.reserve("carl", ip2).is_ok());
        // The window slides: after 60 s the oldest attempts fall out.
        clock.advance(60_000);
        let a = l.reserve("ann", ip2).unwrap();
        l.succeed(a);
        assert!(l.reserve("ann", ip2).is_ok());
    }

    #[test]
    fn a_success_does_not_uncount_guesses_still_in_flight() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let l = LoginLimiter::new(2, 100, 60, clock.clone());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let owner = l.reserve("ann", ip).unwrap();
        clock.advance(10);
        let guess = l.reserve("ann", ip).unwrap();
        l.succeed(owner);
        // The guess reserved after the owner's attempt still counts: 1 of 2.
        let next = l.reserve("ann", ip).unwrap();
        assert!(matches!(
            l.reserve("ann", ip),
            Err(AuthError::RateLimited(_))
        ));
        drop((guess, next));
    }

    #[test]
    fn attempts_are_counted_before_the_check_and_success_gives_back() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let l = LoginLimiter::new(5, 8, 60, clock.clone());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        // Five attempts in flight at once: the sixth is refused before any finished.
        let held: Vec<Attempt> = (0..5).map(|_| l.reserve("ann", ip).unwrap()).collect();
        assert!(matches!(
            l.reserve("ann", ip),
            Err(AuthError::RateLimited(_))
        ));
        // Four fail (dropped, still counted); one succeeds and clears the user.
        let mut held = held.into_iter();
        l.succeed(held.next().unwrap());
        drop(held);
        assert!(l.reserve("ann", ip).is_ok());
        // The IP kept its four failures and this attempt: 5 of 8; a busy
        // server's give-back uncounts.
        let a = l.reserve("bob", ip).unwrap();
        l.give_back(a);
        for _ in 0..3 {
            drop(l.reserve("bob", ip).unwrap());
        }
        assert!(l.reserve("bob", ip).is_err(), "the IP is spent at 8");
    }
}
