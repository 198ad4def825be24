//! Per-model counters for `/health`: lock-free, updated by whoever loads or
//! runs the model, read without stopping anyone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use serde::Serialize;

/// Running counters for one model.
#[derive(Debug, Default)]
pub(super) struct ModelStats {
    loaded: AtomicBool,
    load_ms: AtomicU64,
    inferences: AtomicU64,
    total_us: AtomicU64,
    /// The runtime the loaded model really runs on.
    backend: OnceLock<&'static str>,
}

/// What `/health` reports per model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelHealth {
    pub loaded: bool,
    pub backend: &'static str,
    pub load_ms: Option<u64>,
    pub inferences: u64,
    pub avg_latency_ms: Option<f64>,
}

impl ModelStats {
    /// The model is loaded on `backend`; loading took `ms`.
    pub(super) fn set_loaded(&self, ms: u64, backend: &'static str) {
        let _ = self.backend.set(backend);
        self.load_ms.store(ms, Ordering::Relaxed);
        self.loaded.store(true, Ordering::Relaxed);
    }

    /// Whether the model has been loaded.
    pub(super) fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Counts one inference of `us` microseconds.
    pub(super) fn record(&self, us: u64) {
        self.inferences.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The backend of the loaded model, else `planned` (what loading would use).
    pub(super) fn backend(&self, planned: &'static str) -> &'static str {
        self.backend.get().copied().unwrap_or(planned)
    }

    /// The counters as `/health` shows them (mean latency to 0.1 ms);
    /// `planned` is the backend a model not loaded yet would get.
    pub(super) fn health(&self, planned: &'static str) -> ModelHealth {
        let loaded = self.is_loaded();
        let n = self.inferences.load(Ordering::Relaxed);
        let us = self.total_us.load(Ordering::Relaxed);
        ModelHealth {
            loaded,
            backend: self.backend(planned),
            load_ms: loaded.then(|| self.load_ms.load(Ordering::Relaxed)),
            inferences: n,
            avg_latency_ms: (n > 0).then(|| (us as f64 / n as f64 / 1000.0 * 10.0).round() / 10.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_shows_load_time_only_once_loaded_and_the_mean_latency() {
        let s = ModelStats::default();
        let h = s.health("b");
        assert!(!h.loaded && h.load_ms.is_none() && h.avg_latency_ms.is_none());
        assert_eq!(h.backend, "b", "not loaded: the planned backend");
        s.set_loaded(12, "tract-cuda");
        s.record(1_000);
        s.record(3_000);
        let h = s.health("b");
        assert_eq!((h.loaded, h.load_ms, h.inferences), (true, Some(12), 2));
        assert_eq!(h.avg_latency_ms, Some(2.0));
        assert_eq!(h.backend, "tract-cuda", "loaded: the backend it really got");
    }
}
