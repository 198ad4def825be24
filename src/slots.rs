//! Counted places per client address under a total cap: what one client may
//! hold of a shared resource, so no single client can take all of it. Both
//! ports' connections (`serve`) and the adapter's inference queue
//! (`ai::Engine`) are bounded this way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Places per client address under a total cap.
#[derive(Clone, Debug)]
pub struct Slots {
    inner: Arc<Mutex<SlotCounts>>,
    max_total: usize,
    max_per_ip: usize,
}

#[derive(Default, Debug)]
struct SlotCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Slots {
    /// At most `max_total` held at once, `max_per_ip` of them by one address (each at least 1).
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            inner: Arc::default(),
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
        }
    }

    /// Slots held now, by every client.
    pub fn held(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// A slot for `ip`, or `None` over either cap.
    pub fn take(&self, ip: IpAddr) -> Option<Slot> {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= self.max_total || mine >= self.max_per_ip {
            return None;
        }
        c.total += 1;
        c.per_ip.insert(ip, mine + 1);
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

/// A held slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_per_ip_and_total_and_come_back_on_drop() {
        let s = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = s.take(a).unwrap();
        let _a2 = s.take(a).unwrap();
        assert!(s.take(a).is_none(), "per-ip cap");
        let _b1 = s.take(b).unwrap();
        assert!(s.take(c).is_none(), "total cap");
        drop(a1);
        let c1 = s.take(c).expect("a slot came back");
        assert!(s.take(a).is_none(), "total cap again");
        drop(c1);
        assert!(s.take(a).is_some(), "a is under its own cap again");
        assert!(
            !s.inner.lock().unwrap().per_ip.contains_key(&c),
            "no empty entries kept"
        );
    }
}
