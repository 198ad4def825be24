//! One [`TrackerRegistry`] per API client, so clients cannot see, reset or
//! evict each other's cameras: each has its own namespace of camera names,
//! its own camera cap and its own clocks.
//!
//! Clients are kept least-recently-used first out, by real time only (a
//! client's frame times never age another client out).

use std::collections::HashMap;
use std::hash::Hash;

use super::registry::{TimeJump, TrackerRegistry};
use super::{evict_oldest, TrackInput};

/// A client's registry and when (real time) it was last used.
#[derive(Debug, Clone)]
struct Client {
    registry: TrackerRegistry,
    last_used_ms: i64,
}

/// Per-client tracker registries, keyed by `K` (the daemon uses the peer
/// address); at most `max_clients` are kept.
#[derive(Debug, Clone)]
pub struct ClientTrackers<K> {
    template: TrackerRegistry,
    max_clients: usize,
    clients: HashMap<K, Client>,
}

impl<K: Hash + Eq + Clone> ClientTrackers<K> {
    /// `template` is cloned (empty) for each new client: it carries the
    /// tracker config and the per-client caps. `0` clients is treated as `1`.
    pub fn new(template: TrackerRegistry, max_clients: usize) -> Self {
        Self {
            template,
            max_clients: max_clients.max(1),
            clients: HashMap::new(),
        }
    }

    /// What [`TrackerRegistry::frame_time`] says for this client's camera;
    /// lets a caller refuse a frame before paying for detection.
    pub fn frame_time(
        &self,
        client: &K,
        camera: &str,
        frame_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<i64, TimeJump> {
        match self.clients.get(client) {
            Some(c) => c.registry.frame_time(camera, frame_ms, now_ms),
            None => self.template.frame_time(camera, frame_ms, now_ms),
        }
    }

    /// Runs `client`'s tracker for `camera` (see [`TrackerRegistry::update`]).
    pub fn update(
        &mut self,
        client: &K,
        camera: &str,
        dets: &[TrackInput],
        frame_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Vec<Option<u64>>, TimeJump> {
        if !self.clients.contains_key(client) {
            while self.clients.len() >= self.max_clients
                && evict_oldest(&mut self.clients, |c| c.last_used_ms)
            {}
        }
        let template = &self.template;
        let c = self
            .clients
            .entry(client.clone())
            .or_insert_with(|| Client {
                registry: template.clone(),
                last_used_ms: now_ms,
            });
        c.last_used_ms = now_ms;
        c.registry.update(camera, dets, frame_ms, now_ms)
    }

    /// Number of clients with at least one tracker.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::registry::tests::person;
    use crate::tracker::TrackerConfig;

    fn trackers() -> ClientTrackers<u8> {
        let reg = TrackerRegistry::new(TrackerConfig::default(), 60_000)
            .with_max_cameras(4)
            .with_max_jump(10_000);
        ClientTrackers::new(reg, 2)
    }

    #[test]
    fn one_clients_flood_leaves_anothers_ids_alone() {
        let mut t = trackers();
        let a = |t: &mut ClientTrackers<u8>, ms| t.update(&1, "cam", &[person(0.0)], Some(ms), ms);
        assert_eq!(a(&mut t, 0), Ok(vec![Some(1)]));
        // Client 1's track expires; the next one is id 2.
        assert_eq!(a(&mut t, 5_000), Ok(vec![Some(2)]));
        // Client 2: the same camera name far in the future, and many names.
        t.update(&2, "cam", &[person(0.0)], Some(i64::MAX / 2), 5_001)
            .unwrap();
        for i in 0..64 {
            t.update(&2, &format!("x{i}"), &[], None, 5_002).unwrap();
        }
        assert_eq!(a(&mut t, 5_100), Ok(vec![Some(2)]));
        assert_eq!(t.clients(), 2);
    }

    #[test]
    fn least_recently_used_client_goes_first() {
        let mut t = trackers();
        t.update(&1, "c", &[], None, 0).unwrap();
        t.update(&2, "c", &[], None, 1).unwrap();
        t.update(&1, "c", &[], None, 2).unwrap();
        t.update(&3, "c", &[], None, 3).unwrap();
        assert_eq!(t.clients(), 2);
        assert!(t.clients.contains_key(&1) && t.clients.contains_key(&3));
    }
}
