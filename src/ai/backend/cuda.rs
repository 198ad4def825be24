//! tract's CUDA runtime (`tract-cuda`, feature `cuda`): cuDNN convolutions,
//! cuBLAS products, kernels compiled by NVRTC on first use and cached under
//! `$XDG_CACHE_HOME/tract` (or `~/.cache/tract`). tract places each node on
//! the GPU where it has a kernel for it and keeps the rest on the CPU, so
//! any model tract can run on the CPU runs here too.
//!
//! The CUDA libraries (driver, cudart, NVRTC, cuBLAS, cuDNN) are opened at
//! run time ([`CudaBackend::open`]), so a binary built with the feature
//! starts on a box without them and runs on the CPU.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use tract_onnx::prelude::*;

use super::cpu::TractBackend;
use super::{inference_failed, load_failed, to_f32, to_tensor, typed_model};
use super::{Backend, Dim, F32Tensor, LoadedModel};
use crate::ai::error::AiError;

/// Models planned on tract's CUDA runtime.
pub struct CudaBackend {
    runtime: &'static dyn Runtime,
    f16: bool,
}

struct CudaModel {
    plan: Box<dyn Runnable>,
    outputs: Vec<String>,
    input_type: DatumType,
}

impl CudaBackend {
    /// The name `/health` shows for models on the GPU.
    pub const NAME: &'static str = super::CUDA_NAME;

    /// Opens the CUDA libraries and checks the driver is new enough for
    /// this build's CUDA version. The error names what is missing.
    /// `f16`: plan models in half precision (faster, looser parity).
    pub fn open(f16: bool) -> Result<Self, String> {
        tract_cuda::utils::ensure_cuda_runtime_dependencies("CUDA libraries not usable")
            .map_err(|e| format!("{e:#}"))?;
        let runtime = runtime_for_name("cuda")
            .map_err(|e| format!("{e:#}"))?
            .ok_or("tract has no CUDA runtime registered")?;
        Ok(Self { runtime, f16 })
    }

    /// Plans `model` on the GPU; a panic in the native layer is an error.
    fn prepare(&self, mut model: TypedModel) -> TractResult<Box<dyn Runnable>> {
        if self.f16 {
            let f16 = tract_onnx::tract_core::transform::get_transform("f32_to_f16")?
                .ok_or_else(|| TractError::msg("tract has no f32_to_f16 transform"))?;
            f16.transform(&mut model)?;
        }
        catch_unwind(AssertUnwindSafe(|| self.runtime.prepare(model))).unwrap_or_else(|_| {
            Err(TractError::msg(
                "the CUDA runtime panicked while planning the model",
            ))
        })
    }
}

/// How many of a planned model's nodes run on the GPU, and how many not.
fn placement(plan: &dyn Runnable) -> (usize, usize) {
    let Some(model) = plan.typed_model() else {
        return (0, 0);
    };
    let ops: Vec<String> = model
        .nodes()
        .iter()
        .map(|n| n.op().name().to_string())
        .filter(|n| n != "Source" && n != "Const" && !n.starts_with("DeviceSync"))
        .collect();
    let gpu = ops
        .iter()
        .filter(|n| n.starts_with("Cuda") || n.starts_with("Gpu"))
        .count();
    (gpu, ops.len() - gpu)
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Plans the model on the GPU; a model the CUDA runtime refuses is
    /// loaded on the CPU instead (said once in the log, and in `/health`).
    fn load(&self, path: &Path, input: &[Dim]) -> Result<Box<dyn LoadedModel>, AiError> {
        let (model, outputs) = typed_model(path, input).map_err(|e| load_failed(path, e))?;
        match self.prepare(model) {
            Ok(plan) => {
                let (gpu, cpu) = placement(plan.as_ref());
                let input_type = plan
                    .input_fact(0)
                    .map(|f| f.datum_type)
                    .unwrap_or(f32::datum_type());
                tracing::info!(model = %path.display(), gpu_nodes = gpu, cpu_nodes = cpu, f16 = self.f16, "planned on CUDA");
                Ok(Box::new(CudaModel {
                    plan,
                    outputs,
                    input_type,
                }))
            }
            Err(e) => {
                tracing::warn!(model = %path.display(), "cannot plan on CUDA ({e:#}); running it on the CPU");
                TractBackend.load(path, input)
            }
        }
    }
}

impl LoadedModel for CudaModel {
    fn run(&self, input: F32Tensor) -> Result<Vec<F32Tensor>, AiError> {
        let t = to_tensor(input)?;
        let t = if self.input_type == f32::datum_type() {
            t
        } else {
            t.cast_to_dt(self.input_type)
                .map_err(inference_failed)?
                .into_owned()
        };
        let out = self.plan.run(tvec!(t.into())).map_err(inference_failed)?;
        to_f32(out)
    }

    fn output_names(&self) -> &[String] {
        &self.outputs
    }

    fn backend(&self) -> &'static str {
        CudaBackend::NAME
    }
}
