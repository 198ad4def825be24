//! The mirror's counters, shared with `/health` without locks.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use serde::Serialize;

/// What `/health` shows under `mqtt`: whether the broker is connected and
/// how far the outbox is behind. Cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Status(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    connected: AtomicBool,
    pending: AtomicI64,
    dropped: AtomicI64,
    last_sent_id: AtomicI64,
}

/// One reading of [`Status`], as serialised into `/health` and `<prefix>/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// A session with the broker is up (CONNACK received, not yet lost).
    pub connected: bool,
    /// Events stored but not yet acknowledged by the broker.
    pub pending: i64,
    /// Events skipped because more than `mqtt.outbox_cap` were waiting.
    pub dropped: i64,
    /// The newest event whose PUBACK is recorded in the database.
    pub last_sent_id: i64,
}

impl Status {
    /// A fresh, disconnected status.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current values.
    pub fn report(&self) -> StatusReport {
        let c = &self.0;
        StatusReport {
            connected: c.connected.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            last_sent_id: c.last_sent_id.load(Ordering::Relaxed),
        }
    }

    /// A session came up or was lost.
    pub(crate) fn set_connected(&self, v: bool) {
        self.0.connected.store(v, Ordering::Relaxed);
    }

    /// Events above the cursor, as last counted.
    pub(crate) fn set_pending(&self, v: i64) {
        self.0.pending.store(v.max(0), Ordering::Relaxed);
    }

    /// The stored drop counter.
    pub(crate) fn set_dropped(&self, v: i64) {
        self.0.dropped.store(v, Ordering::Relaxed);
    }

    /// The cursor, once saved.
    pub(crate) fn set_last_sent(&self, v: i64) {
        self.0.last_sent_id.store(v, Ordering::Relaxed);
    }
}

/// The mirror's figures for `/metrics` (registered only when MQTT is on).
impl crate::metrics::Collect for Status {
    fn collect(&self, out: &mut crate::metrics::Exposition) {
        use crate::metrics::Kind::{Counter, Gauge};
        let r = self.report();
        let figures = [
            (
                "opennvr_mqtt_connected",
                "1 while a broker session is up.",
                Gauge,
                f64::from(u8::from(r.connected)),
            ),
            (
                "opennvr_mqtt_pending_events",
                "Stored events the broker has not acknowledged.",
                Gauge,
                r.pending as f64,
            ),
            (
                "opennvr_mqtt_dropped_events_total",
                "Events skipped because more than mqtt.outbox_cap were waiting.",
                Counter,
                r.dropped as f64,
            ),
        ];
        for (name, help, kind, v) in figures {
            out.family(name, help, kind);
            out.sample(name, &[], v);
        }
    }
}
