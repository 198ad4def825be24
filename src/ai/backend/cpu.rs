//! tract on the CPU: pure Rust, no native runtime to ship; the backend
//! every box has, and the one a GPU backend falls back to.

use std::path::Path;

use tract_onnx::prelude::*;

use super::{inference_failed, load_failed, to_f32, to_tensor, typed_model};
use super::{Backend, Dim, F32Tensor, LoadedModel};
use crate::ai::error::AiError;

/// tract on the CPU.
#[derive(Debug, Default)]
pub struct TractBackend;

impl TractBackend {
    /// The name `/health` shows for models on the CPU.
    pub const NAME: &'static str = "tract-cpu";

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
    plan: Arc<TypedSimplePlan>,
    outputs: Vec<String>,
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn load(&self, path: &Path, input: &[Dim]) -> Result<Box<dyn LoadedModel>, AiError> {
        let fail = |e| load_failed(path, e);
        let (model, outputs) = typed_model(path, input).map_err(fail)?;
        let plan = model
            .into_optimized()
            .map_err(fail)?
            .into_runnable()
            .map_err(fail)?;
        Ok(Box::new(TractModel { plan, outputs }))
    }
}

impl LoadedModel for TractModel {
    fn run(&self, input: F32Tensor) -> Result<Vec<F32Tensor>, AiError> {
        let out = self
            .plan
            .run(tvec!(to_tensor(input)?.into()))
            .map_err(inference_failed)?;
        to_f32(out)
    }

    fn output_names(&self) -> &[String] {
        &self.outputs
    }

    fn backend(&self) -> &'static str {
        TractBackend::NAME
    }
}
