//! NVML, the NVIDIA driver's management library: name, memory and load of
//! GPU 0. Each field is asked for on its own: JetPack 6+ ships an NVML that
//! answers the name and little else ("Not Supported"), and one missing field
//! must not hide the others.

use nvml_wrapper::Nvml;

/// What NVML could tell about GPU 0; a field it did not answer is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvmlSample {
    pub name: Option<String>,
    pub memory_total: Option<u64>,
    pub memory_free: Option<u64>,
    pub utilization_percent: Option<f32>,
    pub driver_version: Option<String>,
    /// The CUDA driver API version, e.g. 13000 for CUDA 13.0.
    pub cuda_driver_version: Option<i32>,
}

/// Something that answers like NVML: the real library, or a fake in tests.
pub trait NvmlSource: Send + Sync {
    /// Reads GPU 0 now; `None` when there is no GPU 0.
    fn sample(&self) -> Option<NvmlSample>;
}

/// The real NVML, opened once (dlopen of `libnvidia-ml.so.1`).
pub struct RealNvml(Nvml);

impl RealNvml {
    /// Opens NVML; the error says why (no driver, library missing), for the
    /// one log line that explains why inference stays on the CPU.
    pub fn open() -> Result<Self, String> {
        Nvml::init().map(Self).map_err(|e| format!("NVML: {e}"))
    }
}

impl NvmlSource for RealNvml {
    fn sample(&self) -> Option<NvmlSample> {
        let dev = self.0.device_by_index(0).ok()?;
        let mem = dev.memory_info().ok();
        Some(NvmlSample {
            name: dev.name().ok(),
            memory_total: mem.as_ref().map(|m| m.total),
            memory_free: mem.as_ref().map(|m| m.free),
            utilization_percent: dev.utilization_rates().ok().map(|u| u.gpu as f32),
            driver_version: self.0.sys_driver_version().ok(),
            cuda_driver_version: self.0.sys_cuda_driver_version().ok(),
        })
    }
}
