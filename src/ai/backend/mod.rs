//! The seam between our pipeline and an inference runtime.
//!
//! Everything above this trait speaks plain `f32` tensors, so the GPU
//! runtime ([`cuda`], feature `cuda`) and onnxruntime on the CPU
//! ([`onnxruntime`]) slot in beside tract ([`cpu`]) without the decoders or
//! the API noticing. Which one serves a box is decided once at startup
//! ([`select`], `[ai] device` and `[ai] cpu_runtime`).

pub mod cpu;
#[cfg(feature = "cuda-runtime")]
pub mod cuda;
pub mod onnxruntime;
pub mod select;

use std::path::Path;

use tract_onnx::prelude::*;

use super::error::AiError;

pub use cpu::TractBackend;
pub use onnxruntime::OrtBackend;

/// The name `/health` shows for models on the GPU (tract's CUDA runtime).
pub const CUDA_NAME: &str = "tract-cuda";

/// Whether the backend named `name` runs on the GPU (the CPU runtimes are
/// tract and onnxruntime).
pub fn on_gpu(name: &str) -> bool {
    name == CUDA_NAME
}

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
    /// The runtime this model really runs on (a GPU backend may have
    /// handed a model it cannot plan to the CPU), for `/health`.
    fn backend(&self) -> &'static str;
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

/// A failed run, its cause chain kept.
fn inference_failed(e: TractError) -> AiError {
    AiError::inference(TractFailure(e))
}

/// A failed load of `path`: the task is unavailable, the chain said once.
fn load_failed(path: &Path, e: TractError) -> AiError {
    AiError::TaskUnavailable {
        task: path.display().to_string(),
        reason: format!("cannot load model: {e:#}"),
    }
}

/// `path` read as a typed, decluttered tract model with input 0 set to
/// `input` and the outputs' declared shapes dropped; what every runtime
/// plans from. Also returns the output names, in order.
fn typed_model(path: &Path, input: &[Dim]) -> TractResult<(TypedModel, Vec<String>)> {
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    let batch = model.sym("N");
    let dims: TVec<TDim> = input
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => TDim::from(*n),
            Dim::Batch => TDim::from(batch.clone()),
        })
        .collect();
    model.set_input_fact(0, f32::fact(dims).into())?;
    for i in 0..model.outputs.len() {
        model.set_output_fact(i, InferenceFact::default())?;
    }
    let model = model.into_typed()?.into_decluttered()?;
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
    Ok((model, outputs))
}

/// A runtime's outputs as plain f32 tensors (a model planned in f16 is
/// cast back here).
fn to_f32(outputs: TVec<TValue>) -> Result<Vec<F32Tensor>, AiError> {
    outputs
        .into_iter()
        .map(|v| {
            let v = v.cast_to::<f32>().map_err(inference_failed)?;
            let view = v.to_plain_array_view::<f32>().map_err(inference_failed)?;
            Ok(F32Tensor {
                shape: view.shape().to_vec(),
                data: view.iter().copied().collect(),
            })
        })
        .collect()
}

/// Our input as a tract tensor.
fn to_tensor(input: F32Tensor) -> Result<Tensor, AiError> {
    let t = tract_ndarray::Array::from_shape_vec(input.shape, input.data)
        .map_err(AiError::inference)?;
    Ok(Tensor::from(t))
}
