//! The seam between our pipeline and an inference runtime.
//!
//! Everything above this trait speaks plain `f32` tensors, so a GPU runtime
//! can slot in beside tract without the decoders or the API noticing.

use std::path::Path;

use tract_onnx::prelude::*;

use super::error::AiError;

/// A dense f32 tensor in row-major order, as runtimes hand them over.
#[derive(Debug, Clone)]
pub struct F32Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One dimension of a model's input as we ask the runtime to plan it.
///
/// Detectors run one frame at a time and profit from fully fixed shapes; the
/// face attribute networks run every face of a frame in one call, so their
/// batch stays free and one loaded plan serves any number of faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// A size known when the model is loaded.
    Fixed(usize),
    /// The batch, resolved per call from the input tensor.
    Batch,
}

/// A fully fixed input shape, the common case.
pub fn fixed(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&n| Dim::Fixed(n)).collect()
}

/// A model loaded and ready to run; shared by all requests.
pub trait LoadedModel: Send + Sync {
    /// Runs one batch; outputs come in the model's declared output order.
    fn run(&self, input: F32Tensor) -> Result<Vec<F32Tensor>, AiError>;
    /// Output names in order, so decoders can find heads by name.
    fn output_names(&self) -> &[String];
}

/// Something that turns an ONNX file into a [`LoadedModel`].
pub trait Backend: Send + Sync {
    /// Reported per model in `/health` and `/adapters`.
    fn name(&self) -> &'static str;
    /// Loads `path` with input 0 set to `input` (fixed dimensions let the
    /// runtime plan memory and pick kernels once). Whatever input and output
    /// shapes the file declares are replaced: some exporters pin a sample
    /// batch or resolution (CenterFace declares `[10,3,32,32]`).
    fn load(&self, path: &Path, input: &[Dim]) -> Result<Box<dyn LoadedModel>, AiError>;
}

/// tract on the CPU: pure Rust, no native runtime to ship.
#[derive(Debug, Default)]
pub struct TractBackend;

impl TractBackend {
    /// Makes matrix products use `threads` cores process-wide (tract keeps
    /// one global executor); call once at startup.
    pub fn set_threads(threads: usize) {
        let n = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        if n > 1 {
            tract_linalg::multithread::set_default_executor(
                tract_linalg::multithread::Executor::multithread(n),
            );
        } else {
            tract_linalg::multithread::set_default_executor(
                tract_linalg::multithread::Executor::SingleThread,
            );
        }
    }
}

struct TractModel {
    plan: TypedRunnableModel,
    outputs: Vec<String>,
}

type TypedRunnableModel = Arc<TypedSimplePlan>;

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract-cpu"
    }

    fn load(&self, path: &Path, input: &[Dim]) -> Result<Box<dyn LoadedModel>, AiError> {
        let fail = |e: TractError| AiError::TaskUnavailable {
            task: path.display().to_string(),
            reason: format!("cannot load model: {e:#}"),
        };
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(fail)?;
        let batch = model.sym("N");
        let dims: TVec<TDim> = input
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => TDim::from(*n),
                Dim::Batch => TDim::from(batch.clone()),
            })
            .collect();
        model
            .set_input_fact(0, f32::fact(dims).into())
            .map_err(fail)?;
        for i in 0..model.outputs.len() {
            model
                .set_output_fact(i, InferenceFact::default())
                .map_err(fail)?;
        }
        let model = model.into_optimized().map_err(fail)?;
        let outputs = model
            .outputs
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_owned)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let plan = model.into_runnable().map_err(fail)?;
        Ok(Box::new(TractModel { plan, outputs }))
    }
}

/// A tract error kept whole: tract reports through `anyhow`, whose plain
/// `Display` shows only the outermost context, so this prints the chain.
#[derive(Debug)]
struct TractFailure(TractError);

impl std::fmt::Display for TractFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for TractFailure {}

impl LoadedModel for TractModel {
    fn run(&self, input: F32Tensor) -> Result<Vec<F32Tensor>, AiError> {
        let t = tract_ndarray::Array::from_shape_vec(input.shape, input.data)
            .map_err(AiError::inference)?;
        let out = self
            .plan
            .run(tvec!(Tensor::from(t).into()))
            .map_err(|e| AiError::inference(TractFailure(e)))?;
        out.into_iter()
            .map(|v| {
                let view = v
                    .to_plain_array_view::<f32>()
                    .map_err(|e| AiError::inference(TractFailure(e)))?;
                Ok(F32Tensor {
                    shape: view.shape().to_vec(),
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }

    fn output_names(&self) -> &[String] {
        &self.outputs
    }
}
