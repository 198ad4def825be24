//! The engine: lazily loaded models, per-camera trackers, and a bounded
//! queue in front of the CPU so overload becomes a 503, not a memory spike.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Semaphore;

use super::backend::Backend;
use super::detector::{is_detector_kind, Detector};
use super::error::AiError;
use super::nms::RawDetection;
use super::task::{round4, xywh, DetectionOut, DetectionResult, Params, Task};
use crate::catalog::{Catalog, ModelEntry};
use crate::clock::Clock;
use crate::config::Config;
use crate::frame::Frame;
use crate::tracker::{TrackInput, Tracker, TrackerConfig, TrackerRegistry};

/// Running counters for one model, shown in `/health`.
#[derive(Debug, Default)]
struct ModelStats {
    loaded: AtomicBool,
    load_ms: AtomicU64,
    inferences: AtomicU64,
    total_us: AtomicU64,
}

/// One installed model and, once first used, its loaded form.
struct ModelSlot {
    entry: ModelEntry,
    detector: Mutex<Option<Arc<Detector>>>,
    stats: ModelStats,
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

/// What `/adapters` reports per model.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    pub id: String,
    pub kind: String,
    pub file: String,
    pub sha256: String,
    pub backend: &'static str,
    pub loaded: bool,
    pub tasks: Vec<&'static str>,
    pub source: serde_json::Value,
}

/// Shared by the HTTP handlers, the CLI and (later) the camera loops.
pub struct Engine {
    catalog: Catalog,
    backend: Arc<dyn Backend>,
    slots: Vec<ModelSlot>,
    default_model: String,
    confidence: f32,
    iou: f32,
    trackers: Mutex<TrackerRegistry>,
    tracker_cfg: TrackerConfig,
    clock: Arc<dyn Clock>,
    admission: Arc<Semaphore>,
    runners: Arc<Semaphore>,
}

/// Locks a mutex, recovering from a panic in another holder: the data
/// guarded here (counters, tracker state) stays usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    pub fn new(
        cfg: &Config,
        catalog: Catalog,
        backend: Arc<dyn Backend>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let slots = catalog
            .entries()
            .iter()
            .filter(|e| is_detector_kind(&e.kind))
            .map(|e| ModelSlot {
                entry: e.clone(),
                detector: Mutex::new(None),
                stats: ModelStats::default(),
            })
            .collect();
        let tracker_cfg = TrackerConfig {
            high_thresh: cfg.detector.confidence,
            max_lost_ms: cfg.tracker.max_lost_ms,
            ..TrackerConfig::default()
        };
        Self {
            catalog,
            backend,
            slots,
            default_model: cfg.detector.model.clone(),
            confidence: cfg.detector.confidence,
            iou: cfg.detector.iou,
            trackers: Mutex::new(
                TrackerRegistry::new(tracker_cfg, cfg.tracker.idle_evict_ms).with_max_cameras(256),
            ),
            tracker_cfg,
            clock,
            admission: Arc::new(Semaphore::new(cfg.ai.queue_depth.max(1))),
            runners: Arc::new(Semaphore::new(cfg.ai.workers.max(1))),
        }
    }

    fn slot(&self, id: &str) -> Option<&ModelSlot> {
        self.slots.iter().find(|s| s.entry.id == id)
    }

    /// Tasks whose model is installed, for `/capabilities`.
    pub fn capabilities(&self) -> Vec<&'static str> {
        let detector_ok = self
            .slot(&self.default_model)
            .is_some_and(|s| self.catalog.installed(&s.entry));
        Task::ALL
            .into_iter()
            .filter(|_| detector_ok)
            .map(Task::name)
            .collect()
    }

    /// Every detector in the manifest and whether it is loaded.
    pub fn adapters(&self) -> Vec<AdapterInfo> {
        self.slots
            .iter()
            .map(|s| AdapterInfo {
                id: s.entry.id.clone(),
                kind: s.entry.kind.clone(),
                file: s.entry.file.clone(),
                sha256: s.entry.sha256.clone(),
                backend: self.backend.name(),
                loaded: s.stats.loaded.load(Ordering::Relaxed),
                tasks: if s.entry.id == self.default_model {
                    Task::ALL.into_iter().map(Task::name).collect()
                } else {
                    Vec::new()
                },
                source: s.entry.source.clone(),
            })
            .collect()
    }

    /// Per-model counters for `/health`.
    pub fn model_health(&self) -> BTreeMap<String, ModelHealth> {
        self.slots
            .iter()
            .map(|s| {
                let loaded = s.stats.loaded.load(Ordering::Relaxed);
                let n = s.stats.inferences.load(Ordering::Relaxed);
                let us = s.stats.total_us.load(Ordering::Relaxed);
                let health = ModelHealth {
                    loaded,
                    backend: self.backend.name(),
                    load_ms: loaded.then(|| s.stats.load_ms.load(Ordering::Relaxed)),
                    inferences: n,
                    avg_latency_ms: (n > 0)
                        .then(|| (us as f64 / n as f64 / 1000.0 * 10.0).round() / 10.0),
                };
                (s.entry.id.clone(), health)
            })
            .collect()
    }

    /// Loads the model on first use; later calls get the same instance.
    /// Failures are not cached, so fixing the file on disk fixes the daemon.
    fn detector(&self, id: &str) -> Result<(Arc<Detector>, &ModelSlot), AiError> {
        let slot = self
            .slot(id)
            .ok_or_else(|| AiError::UnknownModel(id.to_owned()))?;
        let mut guard = lock(&slot.detector);
        if let Some(d) = guard.as_ref() {
            return Ok((d.clone(), slot));
        }
        let t0 = Instant::now();
        let d = Arc::new(Detector::load(
            self.backend.as_ref(),
            &self.catalog,
            &slot.entry,
        )?);
        slot.stats
            .load_ms
            .store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
        slot.stats.loaded.store(true, Ordering::Relaxed);
        tracing::info!(
            model = id,
            ms = t0.elapsed().as_millis() as u64,
            "model loaded"
        );
        *guard = Some(d.clone());
        Ok((d, slot))
    }

    /// Runs blocking work `f` on the blocking pool behind the bounded queue.
    ///
    /// At most `queue_depth` requests wait or run; the next is refused with
    /// [`AiError::Busy`] at once, so memory stays bounded under overload.
    pub async fn submit<R, F>(self: &Arc<Self>, f: F) -> Result<R, AiError>
    where
        R: Send + 'static,
        F: FnOnce(&Engine) -> Result<R, AiError> + Send + 'static,
    {
        let _admitted = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| AiError::Busy)?;
        let _running = self
            .runners
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AiError::Busy)?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| AiError::Inference(format!("worker failed: {e}")))?
    }

    /// Runs one task on an already decoded frame (blocking).
    pub fn run(
        &self,
        task: Task,
        frame: &Frame,
        params: &Params,
    ) -> Result<serde_json::Value, AiError> {
        params.validate()?;
        let t0 = Instant::now();
        let model_id = params
            .model
            .clone()
            .unwrap_or_else(|| self.default_model.clone());
        let (det, slot) = self.detector(&model_id)?;
        let conf = params.confidence.unwrap_or(self.confidence);
        let iou = params.iou.unwrap_or(self.iou);
        let max = params.max_detections.unwrap_or(300);
        let min_score = if task == Task::PersonCounting {
            conf.min(self.tracker_cfg.low_thresh)
        } else {
            conf
        };
        let raw = det.detect(&frame.image, min_score, iou)?;
        let mut out: Vec<DetectionOut> = match task {
            Task::PersonCounting => self.track(&det, frame, raw, conf),
            Task::PersonDetection => {
                let person = det.class_of("person").unwrap_or(0);
                raw.iter()
                    .filter(|d| d.class_id == person)
                    .map(|d| out_of(d, None, Some("person".into())))
                    .collect()
            }
            Task::ObjectDetection => {
                let wanted = params.classes.as_ref();
                raw.iter()
                    .filter(|d| {
                        wanted.is_none_or(|w| w.iter().any(|l| *l == det.label(d.class_id)))
                    })
                    .map(|d| out_of(d, None, Some(det.label(d.class_id))))
                    .collect()
            }
        };
        out.truncate(max);
        let elapsed = t0.elapsed();
        slot.stats.inferences.fetch_add(1, Ordering::Relaxed);
        slot.stats
            .total_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let mean = if out.is_empty() {
            0.0
        } else {
            out.iter().map(|d| d.confidence).sum::<f64>() / out.len() as f64
        };
        let result = DetectionResult {
            task: task.name(),
            count: out.len(),
            confidence: (mean * 10_000.0).round() / 10_000.0,
            detections: out,
            latency_ms: elapsed.as_millis() as u64,
            executed_at: rfc3339(self.clock.now_ms()),
            model_id,
        };
        serde_json::to_value(result).map_err(|e| AiError::Inference(e.to_string()))
    }

    /// Person boxes through the camera's tracker. A frame without a camera
    /// gets a fresh tracker, so ids never leak between unrelated images.
    fn track(
        &self,
        det: &Detector,
        frame: &Frame,
        raw: Vec<RawDetection>,
        conf: f32,
    ) -> Vec<DetectionOut> {
        let person = det.class_of("person").unwrap_or(0);
        let people: Vec<RawDetection> = raw.into_iter().filter(|d| d.class_id == person).collect();
        let inputs: Vec<TrackInput> = people
            .iter()
            .map(|d| TrackInput {
                bbox: d.bbox,
                score: d.score,
                class_id: d.class_id,
            })
            .collect();
        let now = frame.timestamp_ms.unwrap_or_else(|| self.clock.now_ms());
        let ids = match &frame.camera {
            Some(cam) => lock(&self.trackers).update(cam, &inputs, now),
            None => Tracker::new(self.tracker_cfg).update(&inputs, now),
        };
        people
            .iter()
            .zip(ids)
            .filter(|(d, _)| d.score >= conf)
            .map(|(d, id)| out_of(d, Some(id), None))
            .collect()
    }
}

fn out_of(d: &RawDetection, track_id: Option<Option<u64>>, label: Option<String>) -> DetectionOut {
    DetectionOut {
        bbox: xywh(d.bbox),
        confidence: round4(d.score),
        track_id,
        label,
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::backend::TractBackend;
    use crate::clock::ManualClock;

    fn engine(queue_depth: usize) -> Arc<Engine> {
        let mut cfg = Config::default();
        cfg.ai.queue_depth = queue_depth;
        let dir = std::env::temp_dir();
        Arc::new(Engine::new(
            &cfg,
            Catalog::empty(&dir),
            Arc::new(TractBackend),
            Arc::new(ManualClock::new(0)),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_busy_at_once() {
        let e = engine(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let e = e.clone();
            async move {
                e.submit(move |_| {
                    let _ = started_tx.send(());
                    rx.recv().map_err(|_| AiError::Busy)
                })
                .await
            }
        });
        started_rx.await.unwrap();
        let second = e.submit(|_| Ok(())).await;
        assert!(matches!(second, Err(AiError::Busy)));
        tx.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        // Capacity is back once the first finished.
        assert!(e.submit(|_| Ok(())).await.is_ok());
    }

    #[test]
    fn no_models_means_no_capabilities_and_unknown_model() {
        let e = engine(1);
        assert!(e.capabilities().is_empty());
        let frame = Frame {
            image: image::RgbImage::new(8, 8),
            camera: None,
            timestamp_ms: None,
        };
        let r = e.run(Task::PersonCounting, &frame, &Params::default());
        assert!(matches!(r, Err(AiError::UnknownModel(_))));
    }
}
