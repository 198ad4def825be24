//! onnxruntime on the CPU: the same ONNX files as tract, 2-3x faster on the
//! x86 boxes measured (docs/performance.md), which is what lets two cores
//! keep up with several cameras.
//!
//! The library is not linked. [`OrtBackend::open`] loads it at run time from
//! the file `models/fetch.sh` (or the .deb) installs, and only when its
//! sha256 is the one this build pins (`models/runtime.sha256`): the bytes
//! hashed are the bytes loaded (through `/proc/self/fd`), so a swapped or
//! damaged library is never run and tract serves instead. Nothing in the
//! `ort` crate is called before that load, so its own search for a library
//! (`ORT_DYLIB_PATH`, the linker path) is never reached.
//!
//! One onnxruntime session runs one inference at a time, so each model keeps
//! a small pool of sessions, made on demand up to the number of runners.
//! An image input's height and width are left free in the session, so the
//! loads of one file at several frame and crop shapes share one pool
//! (onnxruntime runs a free shape as fast as a fixed one; a session per
//! shape cost ~55 MB each). A model onnxruntime cannot take is handed to
//! tract, and `/health` says so.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};

use ort::environment::Environment;
use ort::session::Session;
use prost::Message;
use tract_onnx::pb;

use super::cpu::TractBackend;
use super::{Backend, Dim, F32Tensor, LoadedModel};
use crate::ai::error::AiError;
use crate::ai::lock;
use crate::catalog::{pinned_in, sha256_read};

/// The onnxruntime release this build is written and pinned against.
pub const VERSION: &str = "1.20.1";

/// The library's file name, as the wheel and the .deb carry it.
pub const LIB_FILE: &str = "libonnxruntime.so.1.20.1";

/// sha256 of the library per architecture (`models/runtime.sha256`, lines
/// `<sha256>  <arch>/libonnxruntime.so.<version>`), checked before loading.
const PINS: &str = include_str!("../../../models/runtime.sha256");

/// The sha256 this build pins for the library on `arch`
/// (`std::env::consts::ARCH`), if it ships one there.
pub fn pinned_sha256(arch: &str) -> Option<&'static str> {
    pinned_in(PINS, &format!("{arch}/{LIB_FILE}"))
}

/// Where the library is when `[ai] onnxruntime_lib` is empty: beside the
/// models, where `models/fetch.sh` puts it.
pub fn default_lib(models_dir: &Path) -> PathBuf {
    models_dir.join("runtime").join(LIB_FILE)
}

/// Models on onnxruntime, on the CPU.
pub struct OrtBackend {
    maker: Arc<Maker>,
    /// Sessions one model may hold: inferences of it that run at once.
    sessions: usize,
    /// The models loaded, so that loads of one file at other frame shapes
    /// share its sessions.
    shared: Mutex<HashMap<ModelKey, Weak<Shared>>>,
}

/// A model file and how its sessions declare their input.
type ModelKey = (PathBuf, Vec<Declared>);

/// One input dimension as a session declares it: a size, or a name any
/// size fills.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Declared {
    Size(usize),
    Free(&'static str),
}

/// How a session declares `input`: the batch free where asked, and an
/// image input's (rank 4, NCHW) height and width always free.
fn declared(input: &[Dim]) -> Vec<Declared> {
    let image = input.len() == 4;
    input
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dim::Batch => Declared::Free("N"),
            Dim::Fixed(_) if image && i == 2 => Declared::Free("H"),
            Dim::Fixed(_) if image && i == 3 => Declared::Free("W"),
            Dim::Fixed(n) => Declared::Size(*n),
        })
        .collect()
}

/// What every session is made with; shared by the models' pools.
struct Maker {
    env: Environment,
    /// Threads inside one inference (onnxruntime's intra-op pool).
    threads: usize,
}

impl OrtBackend {
    /// The name `/health` shows for models on onnxruntime.
    pub const NAME: &'static str = "onnxruntime-cpu";

    /// Checks `lib` against this build's pin and loads it. `threads` per
    /// inference, at most `sessions` inferences of one model at once (the
    /// runners). The error says why in one line: the file missing, not the
    /// pinned one, or not loadable. The library loads once per process; a
    /// later call must name the same file (a failed call pins nothing).
    pub fn open(lib: &Path, threads: usize, sessions: usize) -> Result<Self, String> {
        static LOADED: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);
        let mut loaded = lock(&LOADED);
        let env = match &*loaded {
            Some((first, env)) if first == lib => env.clone(),
            Some((first, _)) => {
                return Err(format!(
                    "onnxruntime was already loaded from {}",
                    first.display()
                ))
            }
            None => loaded.insert((lib.to_owned(), load(lib)?)).1.clone(),
        };
        Ok(Self {
            maker: Arc::new(Maker {
                env,
                threads: threads.max(1),
            }),
            sessions: sessions.max(1),
            shared: Mutex::default(),
        })
    }
}

impl Maker {
    /// A session for the ONNX file `bytes` (already shaped by [`with_input`]).
    fn session(&self, bytes: &[u8]) -> ort::Result<Session> {
        Session::builder(&self.env)?
            .with_intra_threads(self.threads)?
            .with_inter_threads(1)?
            // Spinning keeps idle pool threads busy between runs: CPU that
            // the cameras' other work needs.
            .with_intra_op_spinning(false)?
            .commit_from_memory(bytes)
    }
}

/// Verifies the library's sha256 and loads exactly the bytes verified.
fn load(lib: &Path) -> Result<Environment, String> {
    let arch = std::env::consts::ARCH;
    let pin = pinned_sha256(arch)
        .ok_or_else(|| format!("this build pins no onnxruntime library for {arch}"))?;
    let shown = lib.display();
    let file = File::open(lib).map_err(|e| format!("{shown}: {e}"))?;
    let actual = sha256_read(&file).map_err(|e| format!("{shown}: {e}"))?;
    if actual != pin {
        return Err(format!(
            "{shown} is not the onnxruntime {VERSION} this build pins (sha256 {actual})"
        ));
    }
    // The open file, not the path: what was hashed is what gets mapped.
    let verified = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let env = ort::init_from(&verified)
        .map_err(|e| format!("{shown}: {e}"))?
        .with_name("opennvr-edge")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("{shown}: {e}"))?;
    tracing::info!(lib = %shown, sha256 = pin, "onnxruntime {VERSION} loaded");
    Ok(env)
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn load(&self, path: &Path, input: &[Dim]) -> Result<Box<dyn LoadedModel>, AiError> {
        let declared = declared(input);
        let key = (path.to_owned(), declared);
        // Held while a session is made: two loads of one file make one.
        let mut shared = lock(&self.shared);
        if let Some(model) = shared.get(&key).and_then(Weak::upgrade) {
            return Ok(Box::new(OrtModel(model)));
        }
        let first = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| with_input(&b, &key.1))
            .and_then(|b| match self.maker.session(&b) {
                Ok(s) => Ok((s, b)),
                Err(e) => Err(e.to_string()),
            });
        match first {
            Ok((session, bytes)) => {
                let model = Arc::new(Shared {
                    outputs: session
                        .outputs()
                        .iter()
                        .map(|o| o.name().to_owned())
                        .collect(),
                    pool: Pool::new(session, self.sessions),
                    spare: Mutex::new((self.sessions > 1).then(|| Arc::new(bytes))),
                    maker: self.maker.clone(),
                });
                shared.retain(|_, m| m.strong_count() > 0);
                shared.insert(key, Arc::downgrade(&model));
                Ok(Box::new(OrtModel(model)))
            }
            Err(why) => {
                drop(shared);
                tracing::warn!(
                    model = %path.display(),
                    "onnxruntime cannot load the model ({why}); it runs on tract"
                );
                TractBackend.load(path, input)
            }
        }
    }
}

/// `bytes`, an ONNX file, with its first graph input declared as `input`
/// and every other declared shape dropped, as tract's loader does: some
/// exporters pin a sample batch or resolution, and onnxruntime holds a
/// model to what its file declares.
fn with_input(bytes: &[u8], input: &[Declared]) -> Result<Vec<u8>, String> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX file: {e}"))?;
    let graph = model.graph.as_mut().ok_or("the file has no graph")?;
    // Old exporters list the weights among the inputs too.
    let weights: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let first = graph
        .input
        .iter_mut()
        .find(|i| !weights.contains(&i.name))
        .ok_or("the graph has no input")?;
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        first.r#type.as_mut().and_then(|t| t.value.as_mut())
    else {
        return Err(format!("input {:?} is not a tensor", first.name));
    };
    let shape = tensor.shape.get_or_insert_with(Default::default);
    if !shape.dim.is_empty() && shape.dim.len() != input.len() {
        return Err(format!(
            "input {:?} has {} dimensions, not {}",
            first.name,
            shape.dim.len(),
            input.len()
        ));
    }
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    shape.dim = input
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Declared::Size(n) => Value::DimValue(*n as i64),
                Declared::Free(name) => Value::DimParam((*name).into()),
            }),
            ..Default::default()
        })
        .collect();
    for out in &mut graph.output {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            out.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape = None;
        }
    }
    graph.value_info.clear();
    Ok(model.encode_to_vec())
}

/// A model on onnxruntime: its sessions and how to make another; shared
/// by every load of its file at any frame shape.
struct Shared {
    pool: Pool,
    outputs: Vec<String>,
    /// The file as loaded (its checksum verified just before), which a
    /// further session is made from, rather than the file read again when
    /// it might have changed since; dropped once the pool is full.
    spare: Mutex<Option<Arc<Vec<u8>>>>,
    maker: Arc<Maker>,
}

/// One load of a model; its sessions are the file's.
struct OrtModel(Arc<Shared>);

impl LoadedModel for OrtModel {
    fn run(&self, input: F32Tensor) -> Result<Vec<F32Tensor>, AiError> {
        let m = &self.0;
        let mut session = m.pool.take(|| {
            let bytes = lock(&m.spare).clone();
            let bytes = bytes.ok_or_else(|| AiError::inference("the model's pool is full"))?;
            let made = m.maker.session(&bytes).map_err(AiError::inference)?;
            if m.pool.full() {
                *lock(&m.spare) = None;
            }
            Ok(made)
        })?;
        let value = ort::value::Tensor::from_array((input.shape, input.data))
            .map_err(AiError::inference)?;
        let outputs = session
            .run(ort::inputs![value])
            .map_err(AiError::inference)?;
        outputs
            .iter()
            .map(|(_, v)| {
                let (shape, data) = v.try_extract_tensor::<f32>().map_err(AiError::inference)?;
                Ok(F32Tensor {
                    shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
                    data: data.to_vec(),
                })
            })
            .collect()
    }

    fn output_names(&self) -> &[String] {
        &self.0.outputs
    }

    fn backend(&self) -> &'static str {
        OrtBackend::NAME
    }
}

/// A model's sessions: idle ones wait here, and more are made on demand up
/// to `cap`, so memory grows only with the inferences that really overlap.
struct Pool {
    state: Mutex<PoolState>,
    returned: Condvar,
    cap: usize,
}

struct PoolState {
    idle: Vec<Session>,
    /// Sessions in existence (idle, running, or being made).
    made: usize,
}

impl Pool {
    fn new(first: Session, cap: usize) -> Self {
        Self {
            state: Mutex::new(PoolState {
                idle: vec![first],
                made: 1,
            }),
            returned: Condvar::new(),
            cap: cap.max(1),
        }
    }

    /// An idle session, a new one from `make` while fewer than `cap`
    /// exist, or else the next one returned.
    fn take(&self, make: impl FnOnce() -> Result<Session, AiError>) -> Result<Lease<'_>, AiError> {
        let mut state = lock(&self.state);
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                });
            }
            if state.made < self.cap {
                state.made += 1;
                drop(state);
                return match make() {
                    Ok(session) => Ok(Lease {
                        pool: self,
                        session: Some(session),
                    }),
                    Err(e) => {
                        lock(&self.state).made -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            state = self.returned.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// How many sessions exist (idle, running or being made).
    fn made(&self) -> usize {
        lock(&self.state).made
    }

    /// Whether no further session will be made.
    fn full(&self) -> bool {
        self.made() >= self.cap
    }
}

/// A session taken from a pool, given back when dropped (a failed or
/// unwinding run included, so the pool never shrinks).
struct Lease<'p> {
    pool: &'p Pool,
    session: Option<Session>,
}

impl Deref for Lease<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session.as_ref().expect("held until drop")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_mut().expect("held until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            lock(&self.pool.state).idle.push(session);
            self.pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::ai::backend::fixed;
    use crate::ai::detector::{all_of, Detector};
    use crate::ai::nms::{iou, RawDetection};
    use crate::ai::preprocess::{letterbox_window, PixelMap};
    use crate::catalog::Catalog;

    fn models_dir() -> PathBuf {
        std::env::var_os("OPENNVR_TEST_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dist"))
    }

    /// onnxruntime from the pinned library `models/fetch.sh` installed
    /// (scripts/setup.sh); every test of the process names the same file.
    pub(crate) fn ort(sessions: usize) -> OrtBackend {
        let lib = default_lib(&models_dir());
        OrtBackend::open(&lib, 1, sessions)
            .unwrap_or_else(|e| panic!("{e} (scripts/setup.sh installs it)"))
    }

    /// A real photo letterboxed into a `w`x`h` model input: `batch` copies,
    /// RGB, CHW, 0..1, as the detectors feed theirs.
    fn photo(name: &str, batch: usize, w: u32, h: u32) -> F32Tensor {
        let path = models_dir().join("samples").join(name);
        let img = image::open(&path).unwrap().to_rgb8();
        let map = PixelMap {
            bgr: false,
            divisor: 255.0,
            pad: 0.5,
        };
        let (one, _) = letterbox_window(&img, all_of(&img), w, h, map);
        F32Tensor {
            shape: vec![batch, 3, h as usize, w as usize],
            data: one.data.repeat(batch),
        }
    }

    /// Every model we ship gives tract's outputs on onnxruntime, on a real
    /// photo, at the shapes the pipeline plans: the detectors' square and
    /// fitted inputs, CenterFace at a frame's size, the attribute networks
    /// with a free batch.
    #[test]
    fn every_model_gives_tracts_outputs_on_a_real_photo() {
        let catalog = Catalog::open(&models_dir()).expect("the test models (scripts/setup.sh)");
        let side = |id: &str| catalog.get(id).unwrap().input_size().unwrap() as usize;
        let (age, gender) = (side("age-v1"), side("gender-v1"));
        let cases: Vec<(&str, Vec<Dim>, F32Tensor)> = vec![
            (
                "yolov4-tiny-416.onnx",
                fixed(&[1, 3, 416, 416]),
                photo("bus.jpg", 1, 416, 416),
            ),
            (
                "yolov4-tiny-416.onnx",
                fixed(&[1, 3, 320, 416]),
                photo("zidane.jpg", 1, 416, 320),
            ),
            (
                "yolov4-tiny-320.onnx",
                fixed(&[1, 3, 320, 320]),
                photo("bus.jpg", 1, 320, 320),
            ),
            (
                "centerface.onnx",
                fixed(&[1, 3, 384, 640]),
                photo("zidane.jpg", 1, 640, 384),
            ),
            (
                "age-v1.onnx",
                vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(age), Dim::Fixed(age)],
                photo("zidane.jpg", 3, age as u32, age as u32),
            ),
            (
                "gender-v1.onnx",
                vec![
                    Dim::Batch,
                    Dim::Fixed(3),
                    Dim::Fixed(gender),
                    Dim::Fixed(gender),
                ],
                photo("bus.jpg", 2, gender as u32, gender as u32),
            ),
        ];
        let ort = ort(2);
        for (file, dims, input) in cases {
            let path = models_dir().join(file);
            let on_ort = ort.load(&path, &dims).unwrap();
            assert_eq!(
                on_ort.backend(),
                OrtBackend::NAME,
                "{file} fell back to tract"
            );
            let on_tract = TractBackend.load(&path, &dims).unwrap();
            assert_eq!(on_ort.output_names(), on_tract.output_names(), "{file}");
            let a = on_tract.run(input.clone()).unwrap();
            let b = on_ort.run(input).unwrap();
            assert_eq!(a.len(), b.len(), "{file}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.shape, y.shape, "{file}");
                let scale = x.data.iter().fold(1f32, |m, v| m.max(v.abs()));
                let worst = x
                    .data
                    .iter()
                    .zip(&y.data)
                    .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(
                    worst <= 1e-3 * scale,
                    "{file} {dims:?}: differs by {worst} (scale {scale})"
                );
            }
        }
    }

    fn same_detections(file: &str, a: &[RawDetection], b: &[RawDetection]) {
        assert_eq!(a.len(), b.len(), "{file}: {a:?} vs {b:?}");
        for (p, q) in a.iter().zip(b) {
            assert_eq!(p.class_id, q.class_id, "{file}");
            assert!(iou(&p.bbox, &q.bbox) > 0.99, "{file}: {p:?} vs {q:?}");
            assert!((p.score - q.score).abs() < 1e-3, "{file}: {p:?} vs {q:?}");
        }
    }

    /// The detector finds the same objects on both runtimes, square and
    /// fitted (the camera pipeline's full pass), on real photos.
    #[test]
    fn the_detector_finds_what_tract_finds_square_and_fitted() {
        let catalog = Catalog::open(&models_dir()).unwrap();
        let entry = catalog.get("yolov4-tiny-416").unwrap();
        let ort: Arc<dyn Backend> = Arc::new(ort(2));
        let tract: Arc<dyn Backend> = Arc::new(TractBackend);
        let on_ort = Detector::load(ort.as_ref(), &catalog, entry)
            .unwrap()
            .fitting(ort.clone());
        let on_tract = Detector::load(tract.as_ref(), &catalog, entry)
            .unwrap()
            .fitting(tract.clone());
        for file in ["bus.jpg", "zidane.jpg"] {
            let img = image::open(models_dir().join("samples").join(file))
                .unwrap()
                .to_rgb8();
            let a = on_tract.detect(&img, 0.25, 0.45).unwrap();
            assert!(
                a.iter().filter(|d| d.class_id == 0).count() >= 2,
                "{file}: {a:?}"
            );
            same_detections(file, &a, &on_ort.detect(&img, 0.25, 0.45).unwrap());
            let a = on_tract
                .detect_window_fitted(&img, all_of(&img), 0.25, 0.45)
                .unwrap();
            same_detections(
                file,
                &a,
                &on_ort
                    .detect_window_fitted(&img, all_of(&img), 0.25, 0.45)
                    .unwrap(),
            );
        }
    }

    /// A library whose bytes are not the pinned ones is refused before it
    /// is loaded, and a missing one is named.
    #[test]
    fn only_the_pinned_library_is_loaded() {
        let real = default_lib(&models_dir());
        let dir = tempfile::tempdir().unwrap();
        let altered = dir.path().join(LIB_FILE);
        let mut bytes = std::fs::read(&real).unwrap();
        bytes.push(0);
        std::fs::write(&altered, &bytes).unwrap();
        let e = load(&altered).err().unwrap();
        assert!(
            e.starts_with(&format!(
                "{} is not the onnxruntime 1.20.1 this build pins (sha256 ",
                altered.display()
            )),
            "{e}"
        );
        let e = load(&dir.path().join("none.so")).err().unwrap();
        assert!(e.contains("none.so: No such file"), "{e}");
        assert!(pinned_sha256("x86_64").is_some() && pinned_sha256("aarch64").is_some());
        assert_eq!(pinned_sha256("riscv64"), None);
        // The real one opens, and a second path is refused once one is loaded.
        assert_eq!(ort(1).name(), OrtBackend::NAME);
        let e = OrtBackend::open(&altered, 1, 1).err().unwrap();
        assert!(e.starts_with("onnxruntime was already loaded from "), "{e}");
    }

    /// The file's declared shapes give way to the ones we plan, as they do
    /// on tract, an image's height and width left free; a rank that does
    /// not fit is an error, not a guess.
    #[test]
    fn an_input_shape_is_rewritten_and_stale_shapes_dropped() {
        use pb::tensor_shape_proto::dimension::Value;
        let bytes = std::fs::read(models_dir().join("centerface.onnx")).unwrap();
        let dims = declared(&[Dim::Batch, Dim::Fixed(3), Dim::Fixed(64), Dim::Fixed(96)]);
        let model = pb::ModelProto::decode(with_input(&bytes, &dims).unwrap().as_slice()).unwrap();
        let graph = model.graph.unwrap();
        let dim_of = |i: &pb::ValueInfoProto| -> Vec<Option<Value>> {
            match i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(pb::type_proto::Value::TensorType(t)) => t
                    .shape
                    .iter()
                    .flat_map(|s| &s.dim)
                    .map(|d| d.value.clone())
                    .collect(),
                _ => panic!("not a tensor"),
            }
        };
        assert_eq!(
            dim_of(&graph.input[0]),
            vec![
                Some(Value::DimParam("N".into())),
                Some(Value::DimValue(3)),
                Some(Value::DimParam("H".into())),
                Some(Value::DimParam("W".into()))
            ]
        );
        assert!(graph.output.iter().all(|o| dim_of(o).is_empty()));
        assert!(graph.value_info.is_empty());
        let e = with_input(&bytes, &declared(&fixed(&[3, 64, 96]))).unwrap_err();
        assert_eq!(e, "input \"input.1\" has 4 dimensions, not 3");
        assert!(with_input(b"not onnx at all", &declared(&fixed(&[1]))).is_err());
    }

    /// Loads of one file at several frame shapes share one pool of
    /// sessions, each answering at its own shape; another file, or a free
    /// batch, is another model.
    #[test]
    fn loads_of_one_file_at_other_shapes_share_its_sessions() {
        let backend = ort(2);
        let yolo = models_dir().join("yolov4-tiny-416.onnx");
        let square = backend.load(&yolo, &fixed(&[1, 3, 416, 416])).unwrap();
        let fitted = backend.load(&yolo, &fixed(&[1, 3, 320, 416])).unwrap();
        let slim = backend.load(&yolo, &fixed(&[1, 3, 416, 320])).unwrap();
        let grids = |m: &dyn LoadedModel, w, h| -> Vec<Vec<usize>> {
            let out = m.run(photo("bus.jpg", 1, w, h)).unwrap();
            out.into_iter().map(|t| t.shape).collect()
        };
        assert_eq!(
            grids(square.as_ref(), 416, 416),
            [[1, 255, 13, 13], [1, 255, 26, 26]]
        );
        assert_eq!(
            grids(fitted.as_ref(), 416, 320),
            [[1, 255, 10, 13], [1, 255, 20, 26]]
        );
        assert_eq!(
            grids(slim.as_ref(), 320, 416),
            [[1, 255, 13, 10], [1, 255, 26, 20]]
        );
        let shared = lock(&backend.shared);
        assert_eq!(shared.len(), 1, "one model for the three shapes");
        let model = shared.values().next().and_then(Weak::upgrade).unwrap();
        assert_eq!(
            model.pool.made(),
            1,
            "runs one after another need one session"
        );
        drop(shared);
        // A run while the session is out makes the second (the cap) from
        // the bytes loaded, which are then let go.
        assert!(lock(&model.spare).is_some());
        let busy = model.pool.take(|| panic!("one is idle")).unwrap();
        assert_eq!(
            grids(slim.as_ref(), 320, 416),
            [[1, 255, 13, 10], [1, 255, 26, 20]]
        );
        drop(busy);
        assert_eq!(model.pool.made(), 2);
        assert!(lock(&model.spare).is_none(), "the pool is full");
        drop(model);
        let gender = models_dir().join("gender-v1.onnx");
        let _free = backend
            .load(
                &gender,
                &[Dim::Batch, Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)],
            )
            .unwrap();
        assert_eq!(lock(&backend.shared).len(), 2);
        // Dropped loads free their model; the next load makes it again.
        drop((square, fitted, slim));
        let _again = backend.load(&yolo, &fixed(&[1, 3, 416, 416])).unwrap();
        let alive = lock(&backend.shared)
            .values()
            .filter(|m| m.strong_count() > 0)
            .count();
        assert_eq!(alive, 2);
    }

    /// Inferences of one model that overlap each get a session, up to the
    /// cap; past it they wait for one to come back, and a failed make does
    /// not use up the cap.
    #[test]
    fn a_models_sessions_grow_with_overlapping_runs_up_to_the_cap() {
        let backend = ort(2);
        let path = models_dir().join("gender-v1.onnx");
        let bytes = std::fs::read(&path).unwrap();
        let make = || backend.maker.session(&bytes).map_err(AiError::inference);
        let pool = Pool::new(make().unwrap(), 2);
        let first = pool.take(|| panic!("one is idle")).unwrap();
        let e = pool
            .take(|| Err(AiError::inference("no memory")))
            .err()
            .unwrap();
        assert!(e.to_string().contains("no memory"), "{e}");
        assert_eq!(pool.made(), 1, "a failed make gives its place back");
        let second = pool.take(make).unwrap();
        assert_eq!(pool.made(), 2);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let third = pool.take(|| panic!("past the cap")).unwrap();
                tx.send(()).unwrap();
                drop(third);
            });
            assert!(
                rx.recv_timeout(std::time::Duration::from_millis(200))
                    .is_err(),
                "waits"
            );
            drop(first);
            rx.recv().unwrap();
        });
        drop(second);
        assert_eq!(pool.made(), 2);
        assert_eq!(lock(&pool.state).idle.len(), 2);
    }
}
