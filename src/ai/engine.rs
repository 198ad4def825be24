//! The engine: admission (a bounded queue in front of the CPU, so overload
//! becomes a 503, not a memory spike), the runners, and the tasks, run over
//! the installed models (`ai::models`, counters in `ai::stats`) and the
//! `/infer` clients' trackers. The camera pipeline owns its trackers
//! ([`PersonTracker`]); nothing an API client sends can reach them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::backend::Backend;
use super::crops::detect_crops;
use super::detector::{all_of, Detector};
use super::error::AiError;
use super::faces::{analyze, FaceAnalysis};
use super::gate::{Gate, Pass, Priority};
use super::lock;
use super::metrics::{InferMetrics, Source};
use super::models::{AdapterInfo, Models};
use super::nms::RawDetection;
use super::scene::grounded::{light_of, sentence, Seen, View};
use super::scene::{choose, Captioner};
use super::stats::ModelHealth;
use super::task::{
    round4, whole, xywh, DetectionOut, DetectionResult, FaceOut, FaceResult, Params, SceneResult,
    Task, MAX_DETECTIONS_LIMIT,
};
use crate::catalog::{Catalog, ModelEntry};
use crate::clock::Clock;
use crate::config::{Config, FacesConfig};
use crate::frame::Frame;
use crate::slots::{Slot, Slots};
use crate::tracker::{ClientTrackers, TrackInput, Tracker, TrackerConfig, TrackerRegistry};

/// Shared by the HTTP handlers, the CLI and the camera pipeline.
pub struct Engine {
    models: Models,
    faces: FacesConfig,
    confidence: f32,
    iou: f32,
    /// `/infer` person_counting state, one namespace per client.
    trackers: Mutex<ClientTrackers<IpAddr>>,
    tracker_cfg: TrackerConfig,
    clock: Arc<dyn Clock>,
    /// Places in the queue: `queue_depth`, at most half of them per client
    /// address, so one client holding requests open cannot keep others out.
    admission: Slots,
    body_budget: Arc<Semaphore>,
    runners: Arc<Gate>,
    /// Prometheus figures (`ai::metrics`).
    metrics: InferMetrics,
}

/// A camera's own person tracker: the camera pipeline keeps one per camera
/// and passes it to [`Engine::count_people`], so its ids and clock are its
/// own and no API request can end, evict or restart its tracks.
#[derive(Debug, Clone)]
pub struct PersonTracker(Tracker);

impl PersonTracker {
    /// Where this camera's tracked people are expected at `now_ms`, and
    /// which stand still, for motion gating's regions.
    pub fn predicted(&self, now_ms: i64) -> Vec<crate::tracker::Predicted> {
        self.0.predicted(now_ms)
    }

    /// Holds the people `ids` motion gating does not look at on the frame
    /// at `now_ms` (and releases the others): see [`Tracker::hold`].
    pub fn hold(&mut self, ids: &[u64], now_ms: i64) {
        self.0.hold(ids, now_ms);
    }

    /// The people the frame at `now_ms` matched, those seen only by a
    /// low-score detection included: see [`Tracker::matched_at`].
    pub fn matched_at(&self, now_ms: i64) -> Vec<u64> {
        self.0.matched_at(now_ms)
    }
}
/// A runner held for one camera frame ([`Engine::camera_turn`]); dropping
/// it unused hands the runner on.
#[derive(Debug)]
pub struct CameraTurn(Pass);

/// An admitted request: its place in the queue and the body bytes it may
/// buffer. Held until the work it admits is done (it moves into the
/// blocking closure), so a client hanging up frees nothing early.
#[derive(Debug)]
pub struct Admission {
    _place: Slot,
    bytes: Option<OwnedSemaphorePermit>,
    budget: Arc<Semaphore>,
}

impl Admission {
    /// Reserves `n` more buffered bytes against the engine's body budget;
    /// [`AiError::Busy`] when the budget is spent (the caller answers 503).
    pub fn reserve(&mut self, n: usize) -> Result<(), AiError> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| AiError::Busy)?;
        let p = self
            .budget
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| AiError::Busy)?;
        match &mut self.bytes {
            Some(held) => held.merge(p),
            None => self.bytes = Some(p),
        }
        Ok(())
    }

    /// Bytes reserved so far.
    pub fn reserved(&self) -> usize {
        self.bytes.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl Engine {
    pub fn new(
        cfg: &Config,
        catalog: Catalog,
        backend: Arc<dyn Backend>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let tracker_cfg = TrackerConfig {
            high_thresh: cfg.detector.confidence,
            max_lost_ms: cfg.tracker.max_lost_ms,
            ..TrackerConfig::default()
        };
        Self {
            models: Models::new(cfg, catalog, backend),
            faces: cfg.faces.clone(),
            confidence: cfg.detector.confidence,
            iou: cfg.detector.iou,
            trackers: Mutex::new(ClientTrackers::new(
                TrackerRegistry::new(tracker_cfg, cfg.tracker.idle_evict_ms)
                    .with_max_cameras(cfg.ai.max_cameras_per_client)
                    .with_max_jump(cfg.ai.max_timestamp_jump_ms),
                cfg.ai.max_clients,
            )),
            tracker_cfg,
            clock,
            admission: Slots::new(cfg.ai.queue_depth, cfg.ai.queue_depth / 2),
            body_budget: Arc::new(Semaphore::new(
                cfg.ai.body_budget_bytes.clamp(1, u32::MAX as usize),
            )),
            runners: Gate::new(cfg.ai.runners()),
            metrics: InferMetrics::default(),
        }
    }

    /// The clock the engine reads (the adapter's registration window too).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The engine's Prometheus counters.
    pub fn infer_metrics(&self) -> &InferMetrics {
        &self.metrics
    }

    /// Adapter requests admitted and not finished.
    pub fn queue_len(&self) -> usize {
        self.admission.held()
    }

    /// The manifest entry of `id`, for describing a model (contract v1's
    /// `/capabilities`).
    pub fn model_entry(&self, id: &str) -> Option<&ModelEntry> {
        self.models.entry(id)
    }

    /// The size of an installed model file, for describing it.
    pub fn model_file_len(&self, file: &str) -> Option<u64> {
        self.models.file_len(file)
    }

    /// Whether `task` can run here (its model is installed).
    pub fn can_run(&self, task: Task) -> bool {
        self.models.task_ready(task)
    }

    /// The default detector's labels, in class order (loads it on first use;
    /// blocking).
    pub fn detector_labels(&self) -> Result<Vec<String>, AiError> {
        let (det, _) = self.models.detector(self.models.default_model())?;
        Ok(det.labels().to_vec())
    }

    /// The installed captioning model, loaded on first use (blocking);
    /// `Ok(None)` where none is installed, so `scene_description` falls back
    /// to the grounded description; an error where one is installed but
    /// cannot load (altered file, bad graph, settings over the caps).
    pub fn captioner(&self) -> Result<Option<Arc<dyn Captioner>>, AiError> {
        let Some(id) = self.models.captioner_id() else {
            return Ok(None);
        };
        let (blip, _) = self.models.captioner(id)?;
        let captioner: Arc<dyn Captioner> = blip;
        Ok(Some(captioner))
    }

    /// The installed captioner's id without loading it, for listings.
    pub fn captioner_id(&self) -> Option<&str> {
        self.models.captioner_id()
    }

    /// Tasks whose model is installed, for `/capabilities`.
    pub fn capabilities(&self) -> Vec<&'static str> {
        self.models.capabilities()
    }

    /// Every model in the manifest and whether it is loaded, for `/adapters`.
    pub fn adapters(&self) -> Vec<AdapterInfo> {
        self.models.adapters()
    }

    /// Per-model counters for `/health`.
    pub fn model_health(&self) -> BTreeMap<String, ModelHealth> {
        self.models.health()
    }

    /// A place in the bounded queue, taken before anything else of the
    /// request is read: at most `queue_depth` requests are admitted; the next
    /// is refused with [`AiError::Busy`] at once, so memory stays bounded.
    pub fn admit(&self, client: IpAddr) -> Result<Admission, AiError> {
        let Some(place) = self.admission.take(client) else {
            self.metrics.record_failure(None, &AiError::Busy);
            return Err(AiError::Busy);
        };
        Ok(Admission {
            _place: place,
            bytes: None,
            budget: self.body_budget.clone(),
        })
    }

    /// [`admit`](Self::admit), then [`submit_admitted`](Self::submit_admitted).
    #[cfg(test)]
    async fn submit<R, F>(self: &Arc<Self>, f: F) -> Result<R, AiError>
    where
        R: Send + 'static,
        F: FnOnce(&Engine) -> Result<R, AiError> + Send + 'static,
    {
        let ticket = self.admit(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))?;
        self.submit_admitted(ticket, f).await
    }

    /// Runs blocking work `f` for an admitted request once a runner is free
    /// (cameras are served first). The admission and the runner move into
    /// the blocking closure: they are released when `f` ends, not when the
    /// caller stops waiting.
    pub async fn submit_admitted<R, F>(
        self: &Arc<Self>,
        ticket: Admission,
        f: F,
    ) -> Result<R, AiError>
    where
        R: Send + 'static,
        F: FnOnce(&Engine) -> Result<R, AiError> + Send + 'static,
    {
        let pass = self.runners.enter(Priority::Api).await?;
        self.spawn(pass, move |e| {
            let _ticket = ticket;
            f(e)
        })
        .await
    }

    /// Waits for a runner for the camera pipeline: no admission (each
    /// camera has one frame in flight), ahead of API work, so `/infer` load
    /// cannot starve the cameras, and first come first served among the
    /// cameras (each waits at most once at a time: round-robin). A camera
    /// plans its frame before it queues and analyses its frames in the
    /// order they were read (`ingest::detect`).
    pub async fn camera_turn(self: &Arc<Self>) -> Result<CameraTurn, AiError> {
        Ok(CameraTurn(self.runners.enter(Priority::Camera).await?))
    }

    /// Runs the camera pipeline's blocking work `f` on the runner `turn` holds.
    pub async fn run_camera<R, F>(self: &Arc<Self>, turn: CameraTurn, f: F) -> Result<R, AiError>
    where
        R: Send + 'static,
        F: FnOnce(&Engine) -> Result<R, AiError> + Send + 'static,
    {
        self.spawn(turn.0, f).await
    }

    async fn spawn<R, F>(self: &Arc<Self>, pass: Pass, f: F) -> Result<R, AiError>
    where
        R: Send + 'static,
        F: FnOnce(&Engine) -> Result<R, AiError> + Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _pass = pass;
            let _running = me.metrics.running();
            f(&me)
        })
        .await
        .map_err(|e| AiError::inference(format!("worker failed: {e}")))?
    }

    /// A fresh tracker for one camera of the camera pipeline.
    pub fn person_tracker(&self) -> PersonTracker {
        PersonTracker(Tracker::new(self.tracker_cfg))
    }

    /// Runs one task on an already decoded frame (blocking) for `client`:
    /// `person_counting` on a frame with a camera uses that client's own
    /// tracker for the camera.
    pub fn run(
        &self,
        task: Task,
        frame: &Frame,
        params: &Params,
        client: IpAddr,
    ) -> Result<serde_json::Value, AiError> {
        let t0 = Instant::now();
        let r = self.run_untimed(task, frame, params, client);
        self.metrics.record(Source::Api, task, &r, t0.elapsed());
        r
    }

    fn run_untimed(
        &self,
        task: Task,
        frame: &Frame,
        params: &Params,
        client: IpAddr,
    ) -> Result<serde_json::Value, AiError> {
        if task == Task::FaceDetection {
            params.validate()?;
            return self.run_faces(frame, params);
        }
        if task == Task::SceneDescription {
            let r = self.scene(&frame.image, params)?;
            return serde_json::to_value(r).map_err(AiError::inference);
        }
        let tracks = match &frame.camera {
            Some(cam) if task == Task::PersonCounting => {
                self.check_time(client, cam, frame.timestamp_ms)?;
                Tracks::Client(client)
            }
            _ => Tracks::Fresh,
        };
        let result = self.detect_with(task, frame, params, tracks, Area::Whole)?;
        serde_json::to_value(result).map_err(AiError::inference)
    }

    /// Refuses, before detection is paid for, a frame time the client's
    /// tracker for `camera` would refuse.
    fn check_time(
        &self,
        client: IpAddr,
        camera: &str,
        frame_ms: Option<i64>,
    ) -> Result<(), AiError> {
        lock(&self.trackers)
            .frame_time(&client, camera, frame_ms, self.clock.now_ms())
            .map(drop)
            .map_err(|e| AiError::BadRequest(e.to_string()))
    }

    /// `person_counting` through a camera's own tracker (blocking); the
    /// frame's time drives it (the engine's clock when it has none). The
    /// whole frame runs in the input its shape fits, not the square
    /// (`Detector::detect_window_fitted`): a camera's frames keep one shape.
    pub fn count_people(
        &self,
        tracker: &mut PersonTracker,
        frame: &Frame,
        params: &Params,
    ) -> Result<DetectionResult, AiError> {
        self.count_people_on(tracker, frame, params, Area::Fitted)
    }

    /// [`count_people`](Self::count_people) on crops `[x1, y1, x2, y2]` of
    /// the frame (motion gating's regions): each crop runs at full
    /// resolution, boxes come back in frame pixels, merged across crops,
    /// and the tracker is updated once for the frame.
    pub fn count_people_in(
        &self,
        tracker: &mut PersonTracker,
        frame: &Frame,
        params: &Params,
        crops: &[[u32; 4]],
    ) -> Result<DetectionResult, AiError> {
        self.count_people_on(tracker, frame, params, Area::Crops(crops))
    }

    /// The side of the square input of the detector `params` names (the
    /// camera's `[ingest] detect_models` choice, else the default; loads it
    /// on first use; blocking): motion regions are cropped to it.
    pub fn detector_input_size(&self, params: &Params) -> Result<u32, AiError> {
        let (_, det, _) = self.detector_for(params)?;
        Ok(det.input_size())
    }

    fn count_people_on(
        &self,
        tracker: &mut PersonTracker,
        frame: &Frame,
        params: &Params,
        area: Area<'_>,
    ) -> Result<DetectionResult, AiError> {
        let t0 = Instant::now();
        let r = self.detect_with(
            Task::PersonCounting,
            frame,
            params,
            Tracks::Own(&mut tracker.0),
            area,
        );
        let task = Task::PersonCounting;
        self.metrics.record(Source::Camera, task, &r, t0.elapsed());
        r
    }

    fn detect_with(
        &self,
        task: Task,
        frame: &Frame,
        params: &Params,
        tracks: Tracks<'_>,
        area: Area<'_>,
    ) -> Result<DetectionResult, AiError> {
        params.validate()?;
        let t0 = Instant::now();
        let (model_id, det, slot) = self.detector_for(params)?;
        let conf = params.confidence.unwrap_or(self.confidence);
        let iou = params.iou.unwrap_or(self.iou);
        let max = params.max_detections.unwrap_or(300);
        let min_score = if task == Task::PersonCounting {
            conf.min(self.tracker_cfg.low_thresh)
        } else {
            conf
        };
        let raw = match area {
            Area::Whole => det.detect(&frame.image, min_score, iou)?,
            Area::Fitted => {
                det.detect_window_fitted(&frame.image, all_of(&frame.image), min_score, iou)?
            }
            Area::Crops(c) => detect_crops(&det, &frame.image, c, min_score, iou)?,
        };
        let mut out: Vec<DetectionOut> = match task {
            Task::PersonCounting => self.track(&det, frame, raw, conf, tracks)?,
            Task::PersonDetection => {
                let person = det.class_of("person").unwrap_or(0);
                raw.iter()
                    .filter(|d| d.class_id == person)
                    .map(|d| out_of(d, None, Some("person".into())))
                    .collect()
            }
            Task::FaceDetection | Task::SceneDescription => Vec::new(),
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
        slot.record(elapsed.as_micros() as u64);
        let mean = if out.is_empty() {
            0.0
        } else {
            out.iter().map(|d| d.confidence).sum::<f64>() / out.len() as f64
        };
        let result = DetectionResult {
            task: task.name(),
            count: out.len(),
            confidence: (mean * 10_000.0).round() / 10_000.0,
            label: None,
            bbox: None,
            detections: out,
            latency_ms: elapsed.as_millis() as u64,
            executed_at: self.clock.now_ms(),
            model_id,
        };
        Ok(if task == Task::PersonDetection {
            result.best()
        } else {
            result
        })
    }

    /// The detector `params.model` names, else the default: its id, the
    /// loaded detector and its slot for the counters.
    fn detector_for(
        &self,
        params: &Params,
    ) -> Result<(String, Arc<Detector>, &super::models::ModelSlot), AiError> {
        let id = params
            .model
            .clone()
            .unwrap_or_else(|| self.models.default_model().to_owned());
        let (det, slot) = self.models.detector(&id)?;
        Ok((id, det, slot))
    }

    /// The detector `params` names, loaded (tests compare its inputs).
    #[cfg(test)]
    pub(crate) fn detector(&self, params: &Params) -> Result<Arc<Detector>, AiError> {
        self.detector_for(params).map(|(_, det, _)| det)
    }

    /// Checks at start that each `[ingest] detect_models` entry, and
    /// `[ingest] camera_model` unless `auto`, names an installed detector,
    /// so a typo stops the daemon with the key named instead of failing
    /// that camera's every frame.
    pub fn check_detect_models(
        &self,
        models: &std::collections::BTreeMap<String, String>,
        camera_model: &str,
    ) -> Result<(), crate::config::ConfigError> {
        let bad = |id: &str| !self.models.is_detector(id);
        if camera_model != "auto" && bad(camera_model) {
            return Err(crate::config::ConfigError::Invalid(format!(
                "[ingest] camera_model names {camera_model:?}, which is not an installed \
                 detector model"
            )));
        }
        match models.iter().find(|(_, id)| bad(id)) {
            None => Ok(()),
            Some((camera, id)) => Err(crate::config::ConfigError::Invalid(format!(
                "[ingest] detect_models: camera {camera:?} names {id:?}, which is not an \
                 installed detector model"
            ))),
        }
    }

    /// The detector of a camera `[ingest] detect_models` does not name, as
    /// `[ingest] camera_model` (`configured`) says: `auto` is the default
    /// model's int8 copy where it is installed and the models run on
    /// onnxruntime (the one runtime where int8 is faster: 1.4x on the
    /// 416 model, the same people found as f32: `ingest::footage`), else
    /// the default model.
    pub fn camera_model(&self, configured: &str) -> String {
        if configured != "auto" {
            return configured.to_owned();
        }
        let default = self.models.default_model();
        let int8 = format!("{default}-int8");
        if self.backend_name() == super::backend::OrtBackend::NAME && self.models.is_detector(&int8)
        {
            int8
        } else {
            default.to_owned()
        }
    }

    /// The sha256 of an installed model, for event provenance.
    pub fn model_sha256(&self, id: &str) -> Option<String> {
        self.models.sha256(id)
    }

    /// The detector used when a request names none.
    pub fn default_model(&self) -> &str {
        self.models.default_model()
    }

    /// The runtime chosen at startup: `tract-cpu`, `onnxruntime-cpu` or
    /// `tract-cuda`.
    pub fn backend_name(&self) -> &'static str {
        self.models.backend_name()
    }

    /// Face boxes, landmarks and (unless turned off) age and gender, with
    /// the chips they came from; shared by `face_detection` and the CLI's
    /// chip dump. Returns the face detector's id too.
    pub fn analyze_faces(
        &self,
        image: &image::RgbImage,
        params: &Params,
    ) -> Result<(FaceAnalysis, String), AiError> {
        params.validate()?;
        let t0 = Instant::now();
        let model_id = params
            .model
            .clone()
            .unwrap_or_else(|| self.faces.model.clone());
        let (det, slot) = self.models.face_detector(&model_id)?;
        let with_attributes = match params.attributes {
            Some(w) => w,
            None => {
                self.models.installed(&self.faces.age_model)
                    && self.models.installed(&self.faces.gender_model)
            }
        };
        let nets = if with_attributes {
            Some((
                self.models.attribute_net(&self.faces.age_model)?,
                self.models.attribute_net(&self.faces.gender_model)?,
            ))
        } else {
            None
        };
        let analysis = analyze(
            &det,
            nets.as_ref()
                .map(|((a, _), (g, _))| (a.as_ref(), g.as_ref())),
            image,
            params.min_confidence.unwrap_or(self.faces.confidence),
            self.faces.iou,
            params.max_faces.unwrap_or(self.faces.max_faces),
        )?;
        if let Some(((_, age_slot), (_, gender_slot))) = &nets {
            if !analysis.faces.is_empty() {
                age_slot.record(analysis.attribute_us[0]);
                gender_slot.record(analysis.attribute_us[1]);
            }
        }
        let attr_us = analysis.attribute_us[0] + analysis.attribute_us[1];
        slot.record((t0.elapsed().as_micros() as u64).saturating_sub(attr_us));
        Ok((analysis, model_id))
    }

    fn run_faces(&self, frame: &Frame, params: &Params) -> Result<serde_json::Value, AiError> {
        let t0 = Instant::now();
        let (a, model_id) = self.analyze_faces(&frame.image, params)?;
        let faces: Vec<FaceOut> = a
            .faces
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let attr = a.attributes.as_ref().and_then(|v| v.get(i));
                FaceOut {
                    bbox: f.bbox.map(|v| v.round() as i32),
                    confidence: round4(f.score),
                    landmarks: f.landmarks.map(|p| p.map(whole)),
                    age: attr.map(|x| whole(x.age).max(0) as u32),
                    gender: attr.map(|x| x.gender.clone()),
                    gender_confidence: attr.map(|x| round4(x.gender_confidence)),
                }
            })
            .collect();
        let result = FaceResult {
            task: Task::FaceDetection.name(),
            face_count: faces.len(),
            faces,
            latency_ms: t0.elapsed().as_millis() as u64,
            executed_at: self.clock.now_ms(),
            model_id,
        };
        serde_json::to_value(result).map_err(AiError::inference)
    }

    /// `scene_description` for the camera pipeline's event descriptions
    /// (blocking), counted as camera work in the metrics.
    pub fn describe(
        &self,
        image: &image::RgbImage,
        params: &Params,
    ) -> Result<SceneResult, AiError> {
        let t0 = Instant::now();
        let r = self.scene(image, params);
        let task = Task::SceneDescription;
        self.metrics.record(Source::Camera, task, &r, t0.elapsed());
        r
    }

    /// One sentence about `image` from the engine `params.engine` picks
    /// (`scene::choose`): the captioner's, or the grounded description.
    fn scene(&self, image: &image::RgbImage, params: &Params) -> Result<SceneResult, AiError> {
        params.validate()?;
        let t0 = Instant::now();
        let (caption, model_id) = match choose(params.engine.as_deref(), || self.captioner())? {
            Some(c) => (c.caption(image)?, c.model_id().to_owned()),
            None => self.grounded(image, params)?,
        };
        Ok(SceneResult {
            task: Task::SceneDescription.name(),
            caption,
            model_id,
            latency_ms: t0.elapsed().as_millis() as u64,
            executed_at: self.clock.now_ms(),
        })
    }

    /// The grounded description and what produced it
    /// (`detections:<detector>[+<face model>]`): every label the detector
    /// (`params.model` or the default) finds, the faces when the face model
    /// is installed, and the light.
    fn grounded(
        &self,
        image: &image::RgbImage,
        params: &Params,
    ) -> Result<(String, String), AiError> {
        let t0 = Instant::now();
        let (detector, det, slot) = self.detector_for(params)?;
        let conf = params.confidence.unwrap_or(self.confidence);
        let raw = det.detect(image, conf, params.iou.unwrap_or(self.iou))?;
        slot.record(t0.elapsed().as_micros() as u64);
        let objects = raw
            .iter()
            .take(params.max_detections.unwrap_or(MAX_DETECTIONS_LIMIT))
            .map(|d| Seen {
                label: det.label(d.class_id),
                bbox: d.bbox,
            })
            .collect();
        let mut model_id = format!("detections:{detector}");
        let mut faces = 0;
        if self.models.installed(&self.faces.model) {
            // `model` named the detector; the face model is the configured one.
            let p = Params {
                model: None,
                attributes: Some(false),
                ..params.clone()
            };
            faces = self.analyze_faces(image, &p)?.0.faces.len();
            model_id = format!("{model_id}+{}", self.faces.model);
        }
        let view = View {
            width: image.width(),
            height: image.height(),
            light: light_of(image),
            objects,
            faces,
        };
        Ok((sentence(&view), model_id))
    }

    /// Person boxes through the tracker `tracks` names.
    fn track(
        &self,
        det: &Detector,
        frame: &Frame,
        raw: Vec<RawDetection>,
        conf: f32,
        tracks: Tracks<'_>,
    ) -> Result<Vec<DetectionOut>, AiError> {
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
        let now = self.clock.now_ms();
        let at = frame.timestamp_ms.unwrap_or(now);
        let ids = match (tracks, &frame.camera) {
            (Tracks::Own(t), _) => t.update(&inputs, at),
            (Tracks::Client(client), Some(cam)) => lock(&self.trackers)
                .update(&client, cam, &inputs, frame.timestamp_ms, now)
                .map_err(|e| AiError::BadRequest(e.to_string()))?,
            _ => Tracker::new(self.tracker_cfg).update(&inputs, at),
        };
        Ok(people
            .iter()
            .zip(ids)
            .filter(|(d, _)| d.score >= conf)
            .map(|(d, id)| out_of(d, Some(id), None))
            .collect())
    }
}

/// What of the frame the detector sees.
#[derive(Debug, Clone, Copy)]
enum Area<'a> {
    /// The whole frame, letterboxed into the square input.
    Whole,
    /// The whole frame in the input its shape fits (a camera's full pass;
    /// `Detector::detect_window_fitted`).
    Fitted,
    /// These crops, at full resolution (see `ai::crops`).
    Crops(&'a [[u32; 4]]),
}

/// Where `person_counting` keeps its tracks.
enum Tracks<'a> {
    /// A fresh tracker: ids never leak between unrelated images.
    Fresh,
    /// A camera pipeline's own tracker.
    Own(&'a mut Tracker),
    /// The client's namespace, keyed by the frame's camera.
    Client(IpAddr),
}

fn out_of(d: &RawDetection, track_id: Option<Option<u64>>, label: Option<String>) -> DetectionOut {
    DetectionOut {
        bbox: xywh(d.bbox),
        confidence: round4(d.score),
        track_id,
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_holds_at_most_half_the_queue() {
        let e = engine(8);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<Admission> = (0..4).map(|_| e.admit(a).unwrap()).collect();
        assert!(
            matches!(e.admit(a), Err(AiError::Busy)),
            "a's share is 4 of 8"
        );
        let other: Vec<Admission> = (0..4).map(|_| e.admit(b).unwrap()).collect();
        assert!(matches!(e.admit(b), Err(AiError::Busy)));
        drop(held);
        assert!(e.admit(a).is_ok(), "places come back on drop");
        drop(other);
    }
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

    /// An engine over the fetched models (scripts/setup.sh).
    fn installed() -> Engine {
        installed_on(Arc::new(TractBackend))
    }

    fn installed_on(backend: Arc<dyn crate::ai::backend::Backend>) -> Engine {
        let mut cfg = Config::default();
        cfg.paths.models_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dist");
        let catalog = Catalog::open(&cfg.paths.models_dir).expect("the test models");
        Engine::new(&cfg, catalog, backend, Arc::new(ManualClock::new(0)))
    }

    #[test]
    fn motion_crops_follow_the_cameras_detector() {
        let e = installed();
        let own = Params {
            model: Some("yolov4-tiny-320".into()),
            ..Params::default()
        };
        assert_eq!(e.detector_input_size(&own).unwrap(), 320);
        assert_eq!(e.detector_input_size(&Params::default()).unwrap(), 416);
    }

    #[test]
    fn detect_models_must_name_installed_detectors() {
        let e = installed();
        let of = |id: &str| [("door".to_string(), id.to_string())].into();
        assert!(e
            .check_detect_models(&of("yolov4-tiny-320"), "auto")
            .is_ok());
        assert!(e.check_detect_models(&Default::default(), "auto").is_ok());
        let none = Default::default();
        assert!(e.check_detect_models(&none, "yolov4-tiny-416-int8").is_ok());
        for bad in ["yolov4-tiny-999", "centerface"] {
            let err = e
                .check_detect_models(&of(bad), "auto")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("detect_models") && err.contains("door") && err.contains(bad),
                "{err}"
            );
            let err = e.check_detect_models(&none, bad).unwrap_err().to_string();
            assert!(err.contains("camera_model") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn cameras_run_the_int8_detector_only_on_onnxruntime() {
        let on_tract = installed();
        assert_eq!(on_tract.camera_model("auto"), "yolov4-tiny-416");
        let ort = crate::ai::backend::onnxruntime::tests::ort(1);
        let on_ort = installed_on(Arc::new(ort));
        assert_eq!(on_ort.camera_model("auto"), "yolov4-tiny-416-int8");
        // A model named is a model used, on either runtime.
        for e in [&on_tract, &on_ort] {
            assert_eq!(e.camera_model("yolov4-tiny-320"), "yolov4-tiny-320");
        }
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
            image: image::RgbImage::new(8, 8).into(),
            camera: None,
            timestamp_ms: None,
        };
        let r = e.run(
            Task::PersonCounting,
            &frame,
            &Params::default(),
            IpAddr::from([127, 0, 0, 1]),
        );
        assert!(matches!(r, Err(AiError::UnknownModel(_))));
    }
}
