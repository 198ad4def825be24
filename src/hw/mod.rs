//! Hardware heuristics for `/health`: memory and CPU from sysinfo; the GPU
//! from NVML (x86 boxes with an NVIDIA driver, JetPack 6+ in part) and from
//! the Tegra files (every Jetson, the only sign on JetPack 5). Neither found
//! is no error: most boxes have no NVIDIA GPU.
//!
//! The probes are injectable ([`Hardware::with_probes`]: an NVML stand-in
//! and a root folder for the files) so tests run on fixture trees.

pub mod nvml;
pub mod tegra;

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use sysinfo::System;

use self::nvml::{NvmlSample, NvmlSource, RealNvml};
use self::tegra::{Tegra, TegraSample};

/// Probed once at startup; refreshed on every report.
pub struct Hardware {
    sys: Mutex<System>,
    nvml: Option<Box<dyn NvmlSource>>,
    /// Why NVML is not there (for the log line when no GPU is found).
    nvml_error: Option<String>,
    tegra: Option<Tegra>,
    /// The inference backend chosen at startup, shown beside the GPU.
    ai_backend: OnceLock<&'static str>,
}

/// The hardware block of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct HardwareReport {
    pub ram_total_gb: f64,
    pub ram_free_gb: f64,
    pub cpu_cores: usize,
    /// Mean usage over all cores since the previous report.
    pub cpu_usage_percent: f32,
    /// The GPU's name (kept flat for OpenNVR's placement heuristics).
    pub gpu_device: Option<String>,
    /// Dedicated GPU memory; `None` on a Jetson, whose GPU shares the RAM.
    pub vram_total_gb: Option<f64>,
    pub vram_free_gb: Option<f64>,
    /// Everything known about the GPU; `None` when there is none.
    pub gpu: Option<GpuReport>,
}

/// Where a GPU's memory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuMemory {
    /// A card with its own VRAM (`memory_total_gb`/`memory_free_gb`).
    Dedicated,
    /// A Jetson: the GPU uses the system RAM (`ram_*_gb` above).
    SharedWithCpu,
}

/// The GPU as `/health` shows it; fields a driver does not answer are null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuReport {
    pub name: String,
    /// The Jetson board (device-tree model), when this is one.
    pub board: Option<String>,
    /// Which probes answered: `nvml`, `tegra` or `nvml+tegra`.
    pub source: &'static str,
    pub memory: GpuMemory,
    pub memory_total_gb: Option<f64>,
    pub memory_free_gb: Option<f64>,
    pub utilization_percent: Option<f32>,
    pub freq_mhz: Option<u32>,
    pub max_freq_mhz: Option<u32>,
    pub driver_version: Option<String>,
    /// The CUDA version the driver supports, e.g. `13.0`.
    pub cuda_driver_version: Option<String>,
    /// The inference backend in use (`tract-cuda` when models run here).
    pub ai_backend: Option<&'static str>,
}

fn gb(bytes: u64) -> f64 {
    (bytes as f64 / 1e9 * 100.0).round() / 100.0
}

/// One GPU from what NVML and the Tegra files said; NVML first, the files
/// for what it left out. A Jetson's memory is the system's, so no VRAM.
pub fn merge(nvml: Option<NvmlSample>, tegra: Option<(&Tegra, TegraSample)>) -> Option<GpuReport> {
    let n = nvml.unwrap_or_default();
    let source = match (n.name.is_some(), tegra.is_some()) {
        (true, true) => "nvml+tegra",
        (true, false) => "nvml",
        (false, true) => "tegra",
        (false, false) => return None,
    };
    let (board, t) = match tegra {
        Some((t, s)) => (Some(t.model().to_owned()), s),
        None => (None, TegraSample::default()),
    };
    let shared = board.is_some();
    Some(GpuReport {
        name: n.name.or_else(|| board.clone()).unwrap_or_default(),
        board,
        source,
        memory: if shared {
            GpuMemory::SharedWithCpu
        } else {
            GpuMemory::Dedicated
        },
        memory_total_gb: n.memory_total.filter(|_| !shared).map(gb),
        memory_free_gb: n.memory_free.filter(|_| !shared).map(gb),
        utilization_percent: n.utilization_percent.or(t.utilization_percent),
        freq_mhz: t.freq_mhz,
        max_freq_mhz: t.max_freq_mhz,
        driver_version: n.driver_version,
        cuda_driver_version: n
            .cuda_driver_version
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
        ai_backend: None,
    })
}

impl Hardware {
    /// Looks for NVML and a Jetson once; a box without either has no GPU.
    pub fn probe() -> Self {
        let nvml = RealNvml::open().map(|n| Box::new(n) as Box<dyn NvmlSource>);
        Self::with_probes(nvml, Path::new("/"))
    }

    /// The probes given: NVML (or why it is absent) and the root under
    /// which `/proc/device-tree` and `/sys` are read.
    pub fn with_probes(nvml: Result<Box<dyn NvmlSource>, String>, root: &Path) -> Self {
        let mut sys = System::new();
        sys.refresh_cpu_usage();
        let (nvml, nvml_error) = match nvml {
            Ok(n) => (Some(n), None),
            Err(e) => (None, Some(e)),
        };
        Self {
            sys: Mutex::new(sys),
            nvml,
            nvml_error,
            tegra: Tegra::detect(root),
            ai_backend: OnceLock::new(),
        }
    }

    /// The GPU now, or `None`.
    pub fn gpu(&self) -> Option<GpuReport> {
        let nvml = self.nvml.as_ref().and_then(|n| n.sample());
        let tegra = self.tegra.as_ref().map(|t| (t, t.sample()));
        merge(nvml, tegra).map(|mut g| {
            g.ai_backend = self.ai_backend.get().copied();
            g
        })
    }

    /// Whether an NVIDIA GPU is there (decides `[ai] device = "auto"`).
    pub fn has_gpu(&self) -> bool {
        self.gpu().is_some()
    }

    /// Why no GPU was found, naming each probe's answer.
    pub fn no_gpu_reason(&self) -> String {
        let nvml = match (&self.nvml, &self.nvml_error) {
            (_, Some(e)) => e.clone(),
            (Some(_), None) => "NVML: no GPU 0".to_owned(),
            (None, None) => "NVML: not probed".to_owned(),
        };
        format!("no NVIDIA GPU found ({nvml}; /proc/device-tree/model names no Jetson)")
    }

    /// Records the backend inference runs on, for `gpu.ai_backend`.
    pub fn set_ai_backend(&self, name: &'static str) {
        let _ = self.ai_backend.set(name);
    }

    /// The hardware block of `/health`, read now.
    pub fn report(&self) -> HardwareReport {
        let mut sys = self.sys.lock().unwrap_or_else(|p| p.into_inner());
        sys.refresh_memory();
        sys.refresh_cpu_usage();
        let gpu = self.gpu();
        HardwareReport {
            ram_total_gb: gb(sys.total_memory()),
            ram_free_gb: gb(sys.available_memory()),
            cpu_cores: sys.cpus().len().max(1),
            cpu_usage_percent: (sys.global_cpu_usage() * 10.0).round() / 10.0,
            gpu_device: gpu.as_ref().map(|g| g.name.clone()),
            vram_total_gb: gpu.as_ref().and_then(|g| g.memory_total_gb),
            vram_free_gb: gpu.as_ref().and_then(|g| g.memory_free_gb),
            gpu,
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::nvml::{NvmlSample, NvmlSource};

    /// An NVML that answers `sample` for GPU 0 (or has no GPU 0).
    pub struct FakeNvml(pub Option<NvmlSample>);

    impl NvmlSource for FakeNvml {
        fn sample(&self) -> Option<NvmlSample> {
            self.0.clone()
        }
    }

    /// An H200 as NVML on a CUDA 13 driver reports it.
    pub fn h200() -> NvmlSample {
        NvmlSample {
            name: Some("NVIDIA H200".into()),
            memory_total: Some(150_754_820_096),
            memory_free: Some(150_000_000_000),
            utilization_percent: Some(3.0),
            driver_version: Some("580.95.05".into()),
            cuda_driver_version: Some(13000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{h200, FakeNvml};
    use super::tegra::fixture::orin;
    use super::*;

    fn boxed(s: Option<NvmlSample>) -> Result<Box<dyn NvmlSource>, String> {
        Ok(Box::new(FakeNvml(s)))
    }

    #[test]
    fn an_x86_card_reports_its_vram_load_and_driver_through_nvml() {
        let empty = tempfile::tempdir().unwrap();
        let hw = Hardware::with_probes(boxed(Some(h200())), empty.path());
        hw.set_ai_backend("tract-cuda");
        let r = hw.report();
        let g = r.gpu.expect("a GPU");
        assert_eq!(r.gpu_device.as_deref(), Some("NVIDIA H200"));
        assert_eq!(
            (r.vram_total_gb, g.memory),
            (Some(150.75), GpuMemory::Dedicated)
        );
        assert_eq!(g.source, "nvml");
        assert_eq!(g.cuda_driver_version.as_deref(), Some("13.0"));
        assert_eq!(g.utilization_percent, Some(3.0));
        assert_eq!(g.ai_backend, Some("tract-cuda"));
        assert!(g.board.is_none());
    }

    #[test]
    fn a_jetpack6_nvml_that_answers_only_the_name_is_completed_by_the_tegra_files() {
        let root = tempfile::tempdir().unwrap();
        orin(root.path());
        let partial = NvmlSample {
            name: Some("Orin (nvgpu)".into()),
            ..NvmlSample::default()
        };
        let hw = Hardware::with_probes(boxed(Some(partial)), root.path());
        let r = hw.report();
        let g = r.gpu.unwrap();
        assert_eq!(g.source, "nvml+tegra");
        assert_eq!(g.name, "Orin (nvgpu)");
        assert_eq!(
            g.board.as_deref(),
            Some("NVIDIA Jetson Orin Nano Developer Kit")
        );
        assert_eq!(g.memory, GpuMemory::SharedWithCpu);
        assert_eq!((r.vram_total_gb, g.memory_total_gb), (None, None));
        assert_eq!((g.utilization_percent, g.freq_mhz), (Some(37.2), Some(624)));
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["memory"], "shared_with_cpu");
    }

    #[test]
    fn a_jetpack5_box_without_nvml_is_found_by_its_device_tree_alone() {
        let root = tempfile::tempdir().unwrap();
        orin(root.path());
        let hw = Hardware::with_probes(Err("NVML: library not found".into()), root.path());
        let g = hw.gpu().expect("a Jetson");
        assert_eq!(
            (g.source, g.name.as_str()),
            ("tegra", g.board.as_deref().unwrap())
        );
        assert!(g.driver_version.is_none());
    }

    #[test]
    fn without_nvml_or_a_jetson_there_is_no_gpu_and_the_reason_names_both_probes() {
        let empty = tempfile::tempdir().unwrap();
        let hw =
            Hardware::with_probes(Err("NVML: libnvidia-ml.so: not found".into()), empty.path());
        assert!(!hw.has_gpu());
        let r = hw.report();
        assert!(r.gpu.is_none() && r.gpu_device.is_none() && r.vram_total_gb.is_none());
        assert_eq!(
            hw.no_gpu_reason(),
            "no NVIDIA GPU found (NVML: libnvidia-ml.so: not found; /proc/device-tree/model names no Jetson)"
        );
        let no_device = Hardware::with_probes(boxed(None), empty.path());
        assert!(!no_device.has_gpu());
        assert!(no_device.no_gpu_reason().contains("NVML: no GPU 0"));
    }
}
