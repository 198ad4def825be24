//! Which backend serves the models, decided once at startup from
//! `[ai] device`, the GPU the hardware probes found and whether the CUDA
//! libraries load, and on the CPU from `[ai] cpu_runtime` and whether the
//! pinned onnxruntime library loads. Every outcome says why in one line:
//! the daemon logs it, and `device = "cuda"` without a usable GPU (or
//! `cpu_runtime = "onnxruntime"` without its library) is a startup error.

use std::path::Path;
use std::sync::Arc;

use super::{Backend, OrtBackend, TractBackend};
use crate::config::{CpuRuntime, Device};
use crate::hw::Hardware;

/// The backend chosen and the line that explains the choice.
pub struct Selected {
    pub backend: Arc<dyn Backend>,
    pub message: String,
    /// A GPU is there but unused: worth a warning, not an info line.
    pub degraded: bool,
}

/// `[ai] device = "cuda"` on a box where CUDA cannot run: a startup error
/// (never seen by a request), its message says why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoDevice(pub String);

/// Opens the CUDA backend or says why not (the real one is [`open_cuda`]).
pub type CudaOpener<'a> = &'a dyn Fn() -> Result<Arc<dyn Backend>, String>;

/// The CUDA backend of this build, or why there is none: the CUDA
/// libraries missing or too old, or a build without the `cuda` feature.
pub fn open_cuda(f16: bool) -> Result<Arc<dyn Backend>, String> {
    #[cfg(feature = "cuda-runtime")]
    {
        super::cuda::CudaBackend::open(f16).map(|b| Arc::new(b) as Arc<dyn Backend>)
    }
    #[cfg(not(feature = "cuda-runtime"))]
    {
        let _ = f16;
        Err("this build has no CUDA backend (built without the `cuda` feature)".into())
    }
}

/// The runtime that serves the CPU, and why it is not onnxruntime when
/// `auto` wanted onnxruntime and could not have it.
pub struct Cpu {
    pub backend: Arc<dyn Backend>,
    pub fallback: Option<String>,
}

/// Opens onnxruntime or says why not (the real one is [`open_onnxruntime`]).
pub type OrtOpener<'a> = &'a dyn Fn() -> Result<Arc<dyn Backend>, String>;

/// Decides the CPU runtime or fails; the real one is [`cpu_runtime`].
pub type CpuOpener<'a> = &'a dyn Fn() -> Result<Cpu, NoDevice>;

/// onnxruntime from `lib`, checked against this build's pin: `threads`
/// per inference, `sessions` inferences of one model at once.
pub fn open_onnxruntime(
    lib: &Path,
    threads: usize,
    sessions: usize,
) -> Result<Arc<dyn Backend>, String> {
    OrtBackend::open(lib, threads, sessions).map(|b| Arc::new(b) as Arc<dyn Backend>)
}

/// The CPU runtime `want` names; `open` is tried unless tract is asked for.
/// `auto` never fails; `onnxruntime` fails when its library does not load.
pub fn cpu_runtime(want: CpuRuntime, open: OrtOpener) -> Result<Cpu, NoDevice> {
    let tract = |fallback| Cpu {
        backend: Arc::new(TractBackend),
        fallback,
    };
    match want {
        CpuRuntime::Tract => Ok(tract(None)),
        CpuRuntime::Auto => Ok(match open() {
            Ok(backend) => Cpu {
                backend,
                fallback: None,
            },
            Err(e) => tract(Some(format!("onnxruntime unusable: {e}"))),
        }),
        CpuRuntime::Onnxruntime => open()
            .map(|backend| Cpu {
                backend,
                fallback: None,
            })
            .map_err(|e| NoDevice(format!("[ai] cpu_runtime = \"onnxruntime\", but {e}"))),
    }
}

fn cpu(open: CpuOpener, why: String, degraded: bool) -> Result<Selected, NoDevice> {
    let Cpu { backend, fallback } = open()?;
    let mut message = format!("inference on the CPU ({}): {why}", backend.name());
    if let Some(f) = &fallback {
        message = format!("{message}; {f}");
    }
    Ok(Selected {
        backend,
        message,
        degraded: degraded || fallback.is_some(),
    })
}

fn gpu(backend: Arc<dyn Backend>, on: &str) -> Selected {
    let message = format!("inference on the GPU ({}): {on}", backend.name());
    Selected {
        backend,
        message,
        degraded: false,
    }
}

/// Picks the backend for `device` on `hw`; `open` is tried only when the
/// GPU is wanted, `on_cpu` only when the CPU serves. `auto` fails only
/// when the CPU runtime asked for does; `cuda` fails when CUDA does not open.
pub fn select(
    device: Device,
    hw: &Hardware,
    open: CudaOpener,
    on_cpu: CpuOpener,
) -> Result<Selected, NoDevice> {
    let found = hw.gpu().map(|g| g.name);
    match device {
        Device::Cpu => cpu(on_cpu, "[ai] device = \"cpu\"".into(), false),
        Device::Auto => match found {
            None => cpu(on_cpu, hw.no_gpu_reason(), false),
            Some(name) => match open() {
                Ok(b) => Ok(gpu(b, &name)),
                Err(e) => cpu(
                    on_cpu,
                    format!("{name} found, but CUDA is unusable: {e}"),
                    true,
                ),
            },
        },
        // Tried even when no probe saw a GPU: a container may expose the
        // device and libcuda without NVML or the Jetson files.
        Device::Cuda => match (open(), found) {
            (Ok(b), Some(name)) => Ok(gpu(b, &name)),
            (Ok(b), None) => Ok(gpu(b, "a CUDA device (not named by NVML or Tegra files)")),
            (Err(e), Some(name)) => Err(NoDevice(format!(
                "[ai] device = \"cuda\", but CUDA is unusable on {name}: {e}"
            ))),
            (Err(e), None) => Err(NoDevice(format!(
                "[ai] device = \"cuda\", but {}; CUDA: {e}",
                hw.no_gpu_reason()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::error::AiError;
    use crate::hw::fake::{h200, FakeNvml};
    use crate::hw::nvml::NvmlSource;
    use crate::hw::tegra::fixture::orin;

    /// A CUDA opener that succeeds (a stand-in backend: the real one needs a GPU).
    fn opens() -> Result<Arc<dyn Backend>, String> {
        Ok(Arc::new(Stand("tract-cuda")))
    }

    /// A backend that loads nothing: these tests are about the choice
    /// (the real onnxruntime opener is tested in `onnxruntime::tests`).
    struct Stand(&'static str);
    impl Backend for Stand {
        fn name(&self) -> &'static str {
            self.0
        }
        fn load(
            &self,
            _: &std::path::Path,
            _: &[super::super::Dim],
        ) -> Result<Box<dyn super::super::LoadedModel>, AiError> {
            Err(AiError::BadRequest("stand-in".into()))
        }
    }

    /// The CPU served by tract, as `cpu_runtime = "tract"` decides.
    fn tract_only() -> Result<Cpu, NoDevice> {
        cpu_runtime(CpuRuntime::Tract, &|| panic!("opened onnxruntime"))
    }

    fn no_cudnn() -> Result<Arc<dyn Backend>, String> {
        Err("CUDA runtime sub-library \"cudnn\" could not be dlopen'd".into())
    }

    fn no_nvml(root: &std::path::Path) -> Hardware {
        Hardware::with_probes(Err("NVML: libnvidia-ml.so.1: not found".into()), root)
    }

    fn h200_box(root: &std::path::Path) -> Hardware {
        let n: Box<dyn NvmlSource> = Box::new(FakeNvml(Some(h200())));
        Hardware::with_probes(Ok(n), root)
    }

    fn message(r: Result<Selected, NoDevice>) -> (String, &'static str) {
        let s = r.unwrap_or_else(|e| panic!("{e}"));
        (s.message, s.backend.name())
    }

    #[test]
    fn auto_without_nvml_or_a_jetson_stays_on_the_cpu_and_says_why() {
        let root = tempfile::tempdir().unwrap();
        let hw = no_nvml(root.path());
        let opened = std::cell::Cell::new(false);
        let spy = || {
            opened.set(true);
            opens()
        };
        let (msg, name) = message(select(Device::Auto, &hw, &spy, &tract_only));
        assert_eq!(name, "tract-cpu");
        assert_eq!(
            msg,
            "inference on the CPU (tract-cpu): no NVIDIA GPU found (NVML: libnvidia-ml.so.1: not found; /proc/device-tree/model names no Jetson)"
        );
        assert!(!opened.get(), "CUDA is not even opened without a GPU");
    }

    #[test]
    fn auto_with_nvml_but_no_cuda_libraries_stays_on_the_cpu_naming_the_library() {
        let root = tempfile::tempdir().unwrap();
        let (msg, name) = message(select(
            Device::Auto,
            &h200_box(root.path()),
            &no_cudnn,
            &tract_only,
        ));
        assert_eq!(name, "tract-cpu");
        assert_eq!(
            msg,
            "inference on the CPU (tract-cpu): NVIDIA H200 found, but CUDA is unusable: CUDA runtime sub-library \"cudnn\" could not be dlopen'd"
        );
    }

    #[test]
    fn auto_with_a_gpu_and_its_libraries_runs_on_cuda() {
        let root = tempfile::tempdir().unwrap();
        let (msg, name) = message(select(
            Device::Auto,
            &h200_box(root.path()),
            &opens,
            &tract_only,
        ));
        assert_eq!(
            (msg.as_str(), name),
            (
                "inference on the GPU (tract-cuda): NVIDIA H200",
                "tract-cuda"
            )
        );
    }

    #[test]
    fn a_jetson_found_by_its_device_tree_alone_runs_on_cuda_under_auto() {
        let root = tempfile::tempdir().unwrap();
        orin(root.path());
        let (msg, _) = message(select(
            Device::Auto,
            &no_nvml(root.path()),
            &opens,
            &tract_only,
        ));
        assert_eq!(
            msg,
            "inference on the GPU (tract-cuda): NVIDIA Jetson Orin Nano Developer Kit"
        );
    }

    #[test]
    fn device_cuda_without_a_gpu_is_a_clear_startup_error() {
        let root = tempfile::tempdir().unwrap();
        let hw = no_nvml(root.path());
        let e = select(Device::Cuda, &hw, &no_cudnn, &tract_only)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "[ai] device = \"cuda\", but no NVIDIA GPU found (NVML: libnvidia-ml.so.1: not found; /proc/device-tree/model names no Jetson); CUDA: CUDA runtime sub-library \"cudnn\" could not be dlopen'd"
        );
        let e = select(Device::Cuda, &h200_box(root.path()), &no_cudnn, &tract_only)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with(
            "[ai] device = \"cuda\", but CUDA is unusable on NVIDIA H200: CUDA runtime sub-library"
        ));
    }

    #[test]
    fn device_cpu_never_opens_cuda_even_with_a_gpu() {
        let root = tempfile::tempdir().unwrap();
        let never = || -> Result<Arc<dyn Backend>, String> { panic!("opened CUDA") };
        let (msg, name) = message(select(
            Device::Cpu,
            &h200_box(root.path()),
            &never,
            &tract_only,
        ));
        assert_eq!(name, "tract-cpu");
        assert_eq!(
            msg,
            "inference on the CPU (tract-cpu): [ai] device = \"cpu\""
        );
    }

    #[test]
    fn auto_runs_on_onnxruntime_when_its_library_opens_and_on_tract_saying_why_when_not() {
        let root = tempfile::tempdir().unwrap();
        let hw = no_nvml(root.path());
        // The real library (scripts/setup.sh installs it).
        let real = || Ok(Arc::new(super::super::onnxruntime::tests::ort(1)) as Arc<dyn Backend>);
        let ort = || cpu_runtime(CpuRuntime::Auto, &real);
        let s = select(Device::Auto, &hw, &opens, &ort).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.backend.name(), "onnxruntime-cpu");
        assert!(!s.degraded);
        assert!(
            s.message
                .starts_with("inference on the CPU (onnxruntime-cpu): no NVIDIA GPU found"),
            "{}",
            s.message
        );

        let missing = || {
            cpu_runtime(CpuRuntime::Auto, &|| {
                Err("models/dist/runtime/libonnxruntime.so.1.20.1: No such file".into())
            })
        };
        let s = select(Device::Cpu, &hw, &opens, &missing).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.backend.name(), "tract-cpu");
        assert!(s.degraded, "a slower runtime than wanted is a warning");
        assert_eq!(
            s.message,
            "inference on the CPU (tract-cpu): [ai] device = \"cpu\"; onnxruntime unusable: models/dist/runtime/libonnxruntime.so.1.20.1: No such file"
        );
    }

    #[test]
    fn cpu_runtime_onnxruntime_without_its_library_is_a_startup_error() {
        let root = tempfile::tempdir().unwrap();
        let altered = || {
            cpu_runtime(CpuRuntime::Onnxruntime, &|| {
                Err("/x/lib.so is not the onnxruntime 1.20.1 this build pins".into())
            })
        };
        let e = select(Device::Auto, &no_nvml(root.path()), &opens, &altered)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "[ai] cpu_runtime = \"onnxruntime\", but /x/lib.so is not the onnxruntime 1.20.1 this build pins"
        );
    }

    #[test]
    fn a_usable_gpu_never_opens_a_cpu_runtime() {
        let root = tempfile::tempdir().unwrap();
        let never = || -> Result<Cpu, NoDevice> { panic!("opened a CPU runtime") };
        let (_, name) = message(select(Device::Auto, &h200_box(root.path()), &opens, &never));
        assert_eq!(name, "tract-cuda");
    }

    /// This box has no NVIDIA driver: the real opener fails with a reason,
    /// without the feature (no backend) or with it (libcuda not found).
    #[test]
    fn the_real_cuda_opener_fails_clearly_on_a_box_without_cuda() {
        let e = open_cuda(false).err().expect("no CUDA on the test box");
        if cfg!(feature = "cuda-runtime") {
            assert!(e.contains("CUDA driver"), "{e}");
        } else {
            assert_eq!(
                e,
                "this build has no CUDA backend (built without the `cuda` feature)"
            );
        }
    }
}
