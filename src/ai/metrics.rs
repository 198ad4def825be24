//! The engine's Prometheus figures: inferences by source, task and outcome,
//! latency histograms per task, runs in progress, the admission queue and
//! which models are loaded. Names follow OpenNVR's adapter contract (§3.4:
//! `adapter_infer_total`, `adapter_infer_latency_seconds`,
//! `adapter_model_loaded`, `adapter_inflight_requests`, `adapter_queue_depth`),
//! so its dashboards and KAI-C's scraper read ours unchanged.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::engine::Engine;
use super::error::AiError;
use super::task::Task;
use crate::metrics::{Collect, Exposition, Histogram, Kind, LATENCY_BUCKETS_S};

/// Who asked for an inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The adapter's HTTP or WebSocket clients.
    Api,
    /// The camera pipeline's detection workers.
    Camera,
}

impl Source {
    const ALL: [Source; 2] = [Source::Api, Source::Camera];

    fn name(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Camera => "camera",
        }
    }
}

/// The contract's outcome vocabulary (`provider_error` never happens here:
/// nothing is proxied; it is kept so every outcome series exists).
const OUTCOMES: [&str; 5] = [
    "ok",
    "model_error",
    "provider_error",
    "transport_error",
    "refused",
];

/// The outcome an error counts as.
pub fn outcome_of(e: &AiError) -> usize {
    match e {
        AiError::TaskUnavailable { .. } | AiError::Inference(_) => 1,
        AiError::Busy => 4,
        _ => 3,
    }
}

/// Counters the engine updates on every inference.
#[derive(Debug)]
pub struct InferMetrics {
    /// `[source][task][outcome]`.
    counts: [[[AtomicU64; OUTCOMES.len()]; Task::ALL.len()]; Source::ALL.len()],
    /// Requests refused before their task was known (the queue was full).
    refused: AtomicU64,
    /// Per task, every source, whatever the outcome of a run.
    latency: [Histogram; Task::ALL.len()],
    running: AtomicU64,
}

impl Default for InferMetrics {
    fn default() -> Self {
        Self {
            counts: Default::default(),
            refused: AtomicU64::new(0),
            latency: std::array::from_fn(|_| Histogram::new(LATENCY_BUCKETS_S)),
            running: AtomicU64::new(0),
        }
    }
}

fn task_index(t: Task) -> usize {
    Task::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// Marks one run in progress until dropped.
pub struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl InferMetrics {
    /// Counts a run of `task` that took `took` and ended with `result`.
    pub fn record<T>(&self, src: Source, task: Task, result: &Result<T, AiError>, took: Duration) {
        let outcome = result.as_ref().map_or_else(outcome_of, |_| 0);
        self.counts[src as usize][task_index(task)][outcome].fetch_add(1, Relaxed);
        self.latency[task_index(task)].observe(took.as_secs_f64());
    }

    /// Counts a request that failed before its task ran (refused by the
    /// queue, or a frame that did not decode); `task` when it was known.
    pub fn record_failure(&self, task: Option<Task>, e: &AiError) {
        match task {
            Some(t) => {
                self.counts[Source::Api as usize][task_index(t)][outcome_of(e)]
                    .fetch_add(1, Relaxed);
            }
            None => {
                self.refused.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts one run in progress for as long as the guard lives.
    pub fn running(&self) -> Running<'_> {
        self.running.fetch_add(1, Relaxed);
        Running(&self.running)
    }

    fn write(&self, out: &mut Exposition) {
        out.family(
            "adapter_infer_total",
            "Inferences by source (api, camera), task and outcome; task \"\" counts requests refused before their task was read.",
            Kind::Counter,
        );
        for src in Source::ALL {
            for (ti, task) in Task::ALL.iter().enumerate() {
                for (oi, outcome) in OUTCOMES.iter().enumerate() {
                    let n = self.counts[src as usize][ti][oi].load(Relaxed);
                    let labels = [
                        ("source", src.name()),
                        ("task", task.name()),
                        ("outcome", *outcome),
                    ];
                    out.sample("adapter_infer_total", &labels, n as f64);
                }
            }
        }
        let refused = self.refused.load(Relaxed) as f64;
        let labels = [("source", "api"), ("task", ""), ("outcome", "refused")];
        out.sample("adapter_infer_total", &labels, refused);
        out.family(
            "adapter_infer_latency_seconds",
            "Time one inference ran (decode excluded), by task.",
            Kind::Histogram,
        );
        for (task, h) in Task::ALL.iter().zip(&self.latency) {
            out.histogram("adapter_infer_latency_seconds", &[("task", task.name())], h);
        }
        out.family(
            "adapter_inflight_requests",
            "Inferences running now.",
            Kind::Gauge,
        );
        out.sample(
            "adapter_inflight_requests",
            &[],
            self.running.load(Relaxed) as f64,
        );
    }
}

impl Collect for Engine {
    fn collect(&self, out: &mut Exposition) {
        self.infer_metrics().write(out);
        out.family(
            "adapter_queue_depth",
            "Adapter requests admitted and not finished (waiting for a runner or running); the queue holds ai.queue_depth.",
            Kind::Gauge,
        );
        out.sample("adapter_queue_depth", &[], self.queue_len() as f64);
        out.family(
            "adapter_model_loaded",
            "1 when the model is loaded (models load on first use), by manifest id.",
            Kind::Gauge,
        );
        for (id, h) in self.model_health() {
            let v = if h.loaded { 1.0 } else { 0.0 };
            out.sample("adapter_model_loaded", &[("model", &id)], v);
        }
    }
}
