//! Cookie sessions of the web console, held in memory and bounded.
//!
//! A browser gets a random session id in an HttpOnly, SameSite=Strict
//! cookie; only its sha256 is kept here (a lookup compares hashes, so its
//! timing says nothing about the id). A session is server-side: logout
//! removes it and the old cookie is refused at once; it also ends when
//! unused for `session_idle_s`, `session_max_s` after sign-in, and when the
//! user's token version moves on (password reset, API logout, removal).
//! Sessions do not survive a restart: everyone signs in again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::config::ConsoleConfig;
use crate::nvr::auth::{hash_api_token, secret::random_hex};

/// The session cookie's name.
pub const COOKIE: &str = "onvr_session";
/// The sign-in form's CSRF cookie (double submit: before a session exists).
pub const LOGIN_COOKIE: &str = "onvr_login";

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: i64,
    /// The user's token version at sign-in; a change ends the session.
    pub token_version: i64,
    /// The token every form of this session must carry.
    pub csrf: String,
    created_ms: i64,
    last_ms: i64,
    /// When last used, in the order of uses: the least recently used of
    /// one user's sessions is the smallest, even where milliseconds tie.
    used: u64,
}

/// Every live session, keyed by the hash of its id.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    clock: Arc<dyn Clock>,
    idle_ms: i64,
    max_ms: i64,
    cap: usize,
    per_user: usize,
    uses: AtomicU64,
}

/// Every session held is live and the table is at `max_sessions`: the
/// sign-in is refused rather than another user's session ended.
#[derive(Debug, thiserror::Error)]
#[error("the console holds {0} live sessions, its most (console.max_sessions); try again later")]
pub struct Full(pub usize);

impl Sessions {
    /// Empty, with the bounds of `[console]`.
    pub fn new(cfg: &ConsoleConfig, clock: Arc<dyn Clock>) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            clock,
            idle_ms: cfg.session_idle_s.max(1) * 1000,
            max_ms: cfg.session_max_s.max(1) * 1000,
            cap: cfg.max_sessions.max(1),
            per_user: cfg.max_sessions_per_user.max(1),
            uses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, s: &Session, now: i64) -> bool {
        now - s.last_ms < self.idle_ms && now - s.created_ms < self.max_ms
    }

    /// Starts a session; returns its id (for the cookie). A user at
    /// `max_sessions_per_user` loses their own least recently used session;
    /// at `max_sessions` the expired sessions are swept, and when every one
    /// left is live the sign-in is refused ([`Full`]): one user signing in
    /// again and again never ends another's session.
    pub fn start(&self, user_id: i64, token_version: i64) -> Result<String, Full> {
        let now = self.clock.now_ms();
        let mut map = self.lock();
        loop {
            let mine = map.iter().filter(|(_, s)| s.user_id == user_id);
            if mine.clone().count() < self.per_user {
                break;
            }
            let oldest = mine.min_by_key(|(_, s)| s.used).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        if map.len() >= self.cap {
            map.retain(|_, s| self.live(s, now));
        }
        if map.len() >= self.cap {
            return Err(Full(map.len()));
        }
        let id = random_hex(32);
        map.insert(
            hash_api_token(&id),
            Session {
                user_id,
                token_version,
                csrf: random_hex(32),
                created_ms: now,
                last_ms: now,
                used: self.uses.fetch_add(1, Ordering::Relaxed),
            },
        );
        Ok(id)
    }

    /// The live session with this id, marked used now; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = self.clock.now_ms();
        let key = hash_api_token(id);
        let mut map = self.lock();
        let live = self.live(map.get(&key)?, now);
        if !live {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        s.last_ms = now;
        s.used = self.uses.fetch_add(1, Ordering::Relaxed);
        Some(s.clone())
    }

    /// Ends the session with this id (logout, or a user that is gone).
    pub fn end(&self, id: &str) {
        self.lock().remove(&hash_api_token(id));
    }

    /// The session cookie's `Max-Age`: a session never outlives `session_max_s`.
    pub fn max_age_s(&self) -> i64 {
        self.max_ms / 1000
    }

    /// How many sessions are held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always. Not `Secure`:
/// the daemon serves plain HTTP on the LAN, where a Secure cookie would
/// never be sent back (a TLS proxy in front should add it).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_s: i64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn sessions(cap: usize) -> (Arc<ManualClock>, Sessions) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let cfg = ConsoleConfig {
            session_idle_s: 60,
            session_max_s: 300,
            max_sessions: cap,
            max_sessions_per_user: 2,
        };
        (clock.clone(), Sessions::new(&cfg, clock))
    }

    #[test]
    fn a_session_ends_when_idle_too_long_or_too_old_and_at_logout() {
        let (clock, s) = sessions(8);
        let id = s.start(1, 0).unwrap();
        clock.advance(59_000);
        assert!(s.get(&id).is_some(), "used within the idle time");
        clock.advance(59_000);
        assert!(s.get(&id).is_some());
        clock.advance(60_000);
        assert!(s.get(&id).is_none(), "idle for 60 s");
        let id = s.start(1, 0).unwrap();
        for _ in 0..6 {
            clock.advance(50_000);
            let _ = s.get(&id);
        }
        assert!(s.get(&id).is_none(), "older than session_max_s");
        let id = s.start(1, 0).unwrap();
        s.end(&id);
        assert!(s.get(&id).is_none(), "ended at logout");
    }

    #[test]
    fn a_user_past_their_cap_loses_their_own_oldest_and_a_full_table_refuses() {
        let (clock, s) = sessions(4);
        let other = s.start(7, 0).unwrap();
        let mut mine: Vec<String> = (0..5)
            .map(|_| {
                clock.advance(1000);
                s.start(1, 0).unwrap()
            })
            .collect();
        assert_eq!(s.len(), 3, "user 1 holds two, user 7 one");
        assert!(s.get(&other).is_some(), "another user's session stays");
        assert!(mine.drain(..3).all(|id| s.get(&id).is_none()));
        assert!(mine.iter().all(|id| s.get(id).is_some()), "the newest two");
        // Full of live sessions: a new user is refused, nobody is signed out.
        s.start(8, 0).unwrap();
        assert!(s.start(9, 0).is_err());
        assert_eq!(s.len(), 4);
        assert!(s.get(&other).is_some() && mine.iter().all(|id| s.get(id).is_some()));
        // Expired sessions make room.
        clock.advance(61_000);
        assert!(s.start(9, 0).is_ok());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; onvr_session=abc".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "onvr"), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
