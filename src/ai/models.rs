//! The installed models: which manifest entries the engine serves, loading
//! each on first use (checksum verified by the loaders), and what
//! `/capabilities`, `/adapters` and `/health` say about them. Scheduling is
//! the engine's; this module only knows models.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::backend::{Backend, Dim, LoadedModel};
use super::detector::{is_detector_kind, Detector};
use super::error::AiError;
use super::faces::{is_face_kind, AttributeNet, FaceDetector};
use super::lock;
use super::scene::blip::{self, Blip};
use super::stats::{ModelHealth, ModelStats};
use super::task::Task;
use crate::catalog::{Catalog, ModelEntry};
use crate::config::{CaptionerConfig, Config, FacesConfig};

/// A model in its loaded form; which one depends on the manifest kind.
#[derive(Clone)]
enum Loaded {
    Detector(Arc<Detector>),
    Faces(Arc<FaceDetector>),
    Attribute(Arc<AttributeNet>),
    Captioner(Arc<Blip>),
}

/// One installed model and, once first used, its loaded form.
pub(super) struct ModelSlot {
    entry: ModelEntry,
    loaded: Mutex<Option<Loaded>>,
    stats: ModelStats,
}

impl ModelSlot {
    /// Counts one inference of `us` microseconds for `/health`.
    pub(super) fn record(&self, us: u64) {
        self.stats.record(us);
    }
}

/// The engine's backend, remembering which runtime a load really landed
/// on (a GPU backend keeps a model it cannot plan on the CPU).
struct Tracked<'a> {
    inner: &'a dyn Backend,
    used: Mutex<Option<&'static str>>,
}

impl Backend for Tracked<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn load(&self, path: &std::path::Path, input: &[Dim]) -> Result<Box<dyn LoadedModel>, AiError> {
        let m = self.inner.load(path, input)?;
        *lock(&self.used) = Some(m.backend());
        Ok(m)
    }
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

/// The models of the manifest that the engine can run, and which of them
/// serve which task (from `[detector]` and `[faces]`).
pub(super) struct Models {
    catalog: Catalog,
    backend: Arc<dyn Backend>,
    slots: Vec<ModelSlot>,
    default_model: String,
    faces: FacesConfig,
    captioner: CaptionerConfig,
}

impl Models {
    /// One slot per detector or face model of `catalog`; nothing is loaded yet.
    pub(super) fn new(cfg: &Config, catalog: Catalog, backend: Arc<dyn Backend>) -> Self {
        let slots = catalog
            .entries()
            .iter()
            .filter(|e| is_detector_kind(&e.kind) || is_face_kind(&e.kind) || e.kind == blip::KIND)
            .map(|e| ModelSlot {
                entry: e.clone(),
                loaded: Mutex::new(None),
                stats: ModelStats::default(),
            })
            .collect();
        Self {
            catalog,
            backend,
            slots,
            default_model: cfg.detector.model.clone(),
            faces: cfg.faces.clone(),
            captioner: cfg.captioner.clone(),
        }
    }

    /// The manifest entry of `id`.
    pub(super) fn entry(&self, id: &str) -> Option<&ModelEntry> {
        self.catalog.get(id)
    }

    /// The size of an installed model file.
    pub(super) fn file_len(&self, file: &str) -> Option<u64> {
        std::fs::metadata(self.catalog.path(file))
            .ok()
            .map(|m| m.len())
    }

    fn slot(&self, id: &str) -> Option<&ModelSlot> {
        self.slots.iter().find(|s| s.entry.id == id)
    }

    /// Whether model `id` is configured and its file is installed.
    pub(super) fn installed(&self, id: &str) -> bool {
        self.slot(id)
            .is_some_and(|s| self.catalog.installed(&s.entry))
    }

    /// Whether `id` is an installed object detector (not a face or
    /// attribute model), without loading it.
    pub(super) fn is_detector(&self, id: &str) -> bool {
        self.installed(id)
            && self
                .slot(id)
                .is_some_and(|s| !super::faces::is_face_kind(&s.entry.kind))
    }

    /// Whether `task`'s own model is installed (age and gender are optional
    /// extras of `face_detection`).
    pub(super) fn task_ready(&self, task: Task) -> bool {
        if task.uses_detector() {
            self.installed(&self.default_model)
        } else {
            self.installed(&self.faces.model)
        }
    }

    /// Tasks whose model is installed, for `/capabilities`.
    pub(super) fn capabilities(&self) -> Vec<&'static str> {
        Task::ALL
            .into_iter()
            .filter(|t| self.task_ready(*t))
            .map(Task::name)
            .collect()
    }

    /// The captioner `[captioner] model` names (else the manifest's first
    /// BLIP entry), when its files are installed.
    pub(super) fn captioner_id(&self) -> Option<&str> {
        let want = &self.captioner.model;
        self.slots
            .iter()
            .filter(|s| s.entry.kind == blip::KIND)
            .find(|s| want.is_empty() || s.entry.id == *want)
            .filter(|s| self.catalog.installed(&s.entry))
            .map(|s| s.entry.id.as_str())
    }

    /// The tasks a configured model serves, for `/adapters`.
    fn tasks_of(&self, id: &str) -> Vec<&'static str> {
        if self.captioner_id() == Some(id) {
            return vec!["scene_description"];
        }
        let face_ids = [
            &self.faces.model,
            &self.faces.age_model,
            &self.faces.gender_model,
        ];
        Task::ALL
            .into_iter()
            .filter(|t| {
                if t.uses_detector() {
                    id == self.default_model
                } else {
                    face_ids.iter().any(|f| *f == id)
                }
            })
            .map(Task::name)
            .collect()
    }

    /// Every model in the manifest and whether it is loaded.
    pub(super) fn adapters(&self) -> Vec<AdapterInfo> {
        self.slots
            .iter()
            .filter(|s| s.entry.kind != blip::KIND || self.catalog.installed(&s.entry))
            .map(|s| AdapterInfo {
                id: s.entry.id.clone(),
                kind: s.entry.kind.clone(),
                file: s.entry.file.clone(),
                sha256: s.entry.sha256.clone(),
                backend: s.stats.backend(self.backend.name()),
                loaded: s.stats.is_loaded(),
                tasks: self.tasks_of(&s.entry.id),
                source: s.entry.source.clone(),
            })
            .collect()
    }

    /// Per-model counters for `/health`.
    pub(super) fn health(&self) -> BTreeMap<String, ModelHealth> {
        self.slots
            .iter()
            .map(|s| (s.entry.id.clone(), s.stats.health(self.backend.name())))
            .collect()
    }

    /// The sha256 of an installed model, for event provenance.
    pub(super) fn sha256(&self, id: &str) -> Option<String> {
        self.catalog.get(id).map(|e| e.sha256.clone())
    }

    /// The detector used when a request names none.
    pub(super) fn default_model(&self) -> &str {
        &self.default_model
    }

    /// The runtime chosen at startup (a model it could not take may run
    /// on another; `health` says per model).
    pub(super) fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Loads the model on first use; later calls get the same instance.
    /// Failures are not cached, so fixing the file on disk fixes the daemon.
    fn load(&self, id: &str) -> Result<(Loaded, &ModelSlot), AiError> {
        let slot = self
            .slot(id)
            .ok_or_else(|| AiError::UnknownModel(id.to_owned()))?;
        let mut guard = lock(&slot.loaded);
        if let Some(d) = guard.as_ref() {
            return Ok((d.clone(), slot));
        }
        let t0 = Instant::now();
        let tracked = Tracked {
            inner: self.backend.as_ref(),
            used: Mutex::new(None),
        };
        let (backend, entry) = (&tracked as &dyn Backend, &slot.entry);
        let d = match entry.kind.as_str() {
            "centerface" => Loaded::Faces(Arc::new(FaceDetector::load(
                backend,
                &self.catalog,
                entry,
                self.faces.input_width,
                self.faces.input_height,
            )?)),
            blip::KIND => {
                Loaded::Captioner(Arc::new(Blip::load(&self.catalog, entry, &self.captioner)?))
            }
            k if is_face_kind(k) => {
                Loaded::Attribute(Arc::new(AttributeNet::load(backend, &self.catalog, entry)?))
            }
            _ => Loaded::Detector(Arc::new(
                Detector::load(backend, &self.catalog, entry)?.fitting(self.backend.clone()),
            )),
        };
        let ms = t0.elapsed().as_millis() as u64;
        let on = lock(&tracked.used).unwrap_or(self.backend.name());
        slot.stats.set_loaded(ms, on);
        tracing::info!(model = id, ms, backend = on, "model loaded");
        *guard = Some(d.clone());
        Ok((d, slot))
    }

    /// A request naming a model of the wrong kind is the client's mistake.
    fn wrong_kind(slot: &ModelSlot, wanted: &str) -> AiError {
        AiError::BadRequest(format!(
            "model {} is a {} model, not {wanted}",
            slot.entry.id, slot.entry.kind
        ))
    }

    /// Object detector `id`, loaded, with its slot for the counters.
    pub(super) fn detector(&self, id: &str) -> Result<(Arc<Detector>, &ModelSlot), AiError> {
        match self.load(id)? {
            (Loaded::Detector(d), slot) => Ok((d, slot)),
            (_, slot) => Err(Self::wrong_kind(slot, "an object detector")),
        }
    }

    /// Face detector `id`, loaded, with its slot for the counters.
    pub(super) fn face_detector(
        &self,
        id: &str,
    ) -> Result<(Arc<FaceDetector>, &ModelSlot), AiError> {
        match self.load(id)? {
            (Loaded::Faces(d), slot) => Ok((d, slot)),
            (_, slot) => Err(Self::wrong_kind(slot, "a face detector")),
        }
    }

    /// Captioner `id`, loaded, with its slot for the counters.
    pub(super) fn captioner(&self, id: &str) -> Result<(Arc<Blip>, &ModelSlot), AiError> {
        match self.load(id)? {
            (Loaded::Captioner(c), slot) => Ok((c, slot)),
            (_, slot) => Err(Self::wrong_kind(slot, "a captioner")),
        }
    }

    /// Age or gender network `id`, loaded, with its slot for the counters.
    pub(super) fn attribute_net(
        &self,
        id: &str,
    ) -> Result<(Arc<AttributeNet>, &ModelSlot), AiError> {
        match self.load(id)? {
            (Loaded::Attribute(d), slot) => Ok((d, slot)),
            (_, slot) => Err(Self::wrong_kind(slot, "an age or gender model")),
        }
    }
}
