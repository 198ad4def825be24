//! Hardware heuristics for `/health`: memory and CPU from sysinfo, GPU from
//! NVML when the driver is present (absent on plain x86 boxes; no error).

use std::sync::Mutex;

use serde::Serialize;
use sysinfo::System;

/// Probed once at startup; refreshed on every report.
pub struct Hardware {
    sys: Mutex<System>,
    nvml: Option<nvml_wrapper::Nvml>,
}

/// The hardware block of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct HardwareReport {
    pub ram_total_gb: f64,
    pub ram_free_gb: f64,
    pub cpu_cores: usize,
    /// Mean usage over all cores since the previous report.
    pub cpu_usage_percent: f32,
    pub gpu_device: Option<String>,
    pub vram_total_gb: Option<f64>,
    pub vram_free_gb: Option<f64>,
}

fn gb(bytes: u64) -> f64 {
    (bytes as f64 / 1e9 * 100.0).round() / 100.0
}

impl Hardware {
    /// Looks for NVML once; a box without an NVIDIA driver simply has no GPU.
    pub fn probe() -> Self {
        let mut sys = System::new();
        sys.refresh_cpu_usage();
        let nvml = nvml_wrapper::Nvml::init().ok();
        Self {
            sys: Mutex::new(sys),
            nvml,
        }
    }

    /// Whether an NVIDIA GPU is usable (decides the backend preference).
    pub fn has_gpu(&self) -> bool {
        self.nvml
            .as_ref()
            .is_some_and(|n| n.device_by_index(0).is_ok())
    }

    pub fn report(&self) -> HardwareReport {
        let mut sys = self.sys.lock().unwrap_or_else(|p| p.into_inner());
        sys.refresh_memory();
        sys.refresh_cpu_usage();
        let (gpu_device, vram_total_gb, vram_free_gb) =
            match self.nvml.as_ref().and_then(|n| n.device_by_index(0).ok()) {
                Some(dev) => {
                    let mem = dev.memory_info().ok();
                    (
                        dev.name().ok(),
                        mem.as_ref().map(|m| gb(m.total)),
                        mem.as_ref().map(|m| gb(m.free)),
                    )
                }
                None => (None, None, None),
            };
        HardwareReport {
            ram_total_gb: gb(sys.total_memory()),
            ram_free_gb: gb(sys.available_memory()),
            cpu_cores: sys.cpus().len().max(1),
            cpu_usage_percent: (sys.global_cpu_usage() * 10.0).round() / 10.0,
            gpu_device,
            vram_total_gb,
            vram_free_gb,
        }
    }
}
