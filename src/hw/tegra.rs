//! Jetson (Tegra) signs read from files: the device-tree model names the
//! board, the GPU's sysfs nodes give its load and clock. JetPack 5 has no
//! NVML at all and JetPack 6+ answers it only in part, so these files are
//! how a Jetson is found and watched. Every path is read under `root` (`/`
//! on a box, a fixture tree in tests).

use std::path::{Path, PathBuf};

/// Where the GPU's load (tenths of a percent) lives, by JetPack generation.
const LOAD_NODES: &[&str] = &[
    "sys/devices/platform/gpu.0/load",
    "sys/devices/gpu.0/load",
    "sys/devices/platform/bus@0/17000000.gpu/load",
    "sys/devices/17000000.ga10b/load",
    "sys/devices/17000000.gv11b/load",
    "sys/devices/57000000.gpu/load",
];

/// devfreq entries of the integrated GPUs: Orin (ga10b), Xavier (gv11b),
/// TX2 (gp10b), Nano (57000000.gpu), Thor (gb10b) and `*.gpu` names.
const DEVFREQ_GPU_NAMES: &[&str] = &["ga10b", "gv11b", "gp10b", "gb10b", "gpu"];

/// A Jetson found under `root`.
#[derive(Debug, Clone)]
pub struct Tegra {
    root: PathBuf,
    model: String,
    devfreq: Option<PathBuf>,
}

/// One reading of the Tegra GPU's sysfs nodes; a node that is missing or
/// unreadable (permissions differ per JetPack) is `None`, not an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TegraSample {
    pub utilization_percent: Option<f32>,
    pub freq_mhz: Option<u32>,
    pub max_freq_mhz: Option<u32>,
}

fn read_trimmed(path: &Path) -> Option<String> {
    let raw = std::fs::read(path).ok()?;
    // Device-tree strings end in NUL.
    let text = String::from_utf8_lossy(&raw);
    let t = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!t.is_empty()).then(|| t.to_owned())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

fn hz_to_mhz(hz: u64) -> u32 {
    (hz / 1_000_000) as u32
}

impl Tegra {
    /// A Jetson when `root/proc/device-tree/model` names one (or the
    /// device tree's `compatible` list says `nvidia,tegra…`); else `None`.
    pub fn detect(root: &Path) -> Option<Self> {
        let dt = root.join("proc/device-tree");
        let model = read_trimmed(&dt.join("model"));
        let compatible = std::fs::read(dt.join("compatible"))
            .map(|b| String::from_utf8_lossy(&b).to_lowercase())
            .unwrap_or_default();
        let is_tegra = model
            .as_deref()
            .is_some_and(|m| m.to_lowercase().contains("jetson"))
            || compatible.contains("nvidia,tegra");
        if !is_tegra {
            return None;
        }
        Some(Self {
            root: root.to_owned(),
            model: model.unwrap_or_else(|| "NVIDIA Jetson".into()),
            devfreq: find_gpu_devfreq(root),
        })
    }

    /// The board's name as the device tree gives it.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Reads the GPU's load and clocks now.
    pub fn sample(&self) -> TegraSample {
        let load = LOAD_NODES
            .iter()
            .map(|p| self.root.join(p))
            .chain(self.devfreq.iter().map(|d| d.join("device/load")))
            .find_map(|p| read_u64(&p));
        let freq = |name: &str| {
            self.devfreq
                .as_ref()
                .and_then(|d| read_u64(&d.join(name)))
                .map(hz_to_mhz)
        };
        TegraSample {
            // sysfs gives tenths of a percent (0..=1000).
            utilization_percent: load.map(|l| (l.min(1000) as f32) / 10.0),
            freq_mhz: freq("cur_freq"),
            max_freq_mhz: freq("max_freq"),
        }
    }
}

/// The devfreq directory of the integrated GPU, if the kernel has one.
fn find_gpu_devfreq(root: &Path) -> Option<PathBuf> {
    let dir = root.join("sys/class/devfreq");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| DEVFREQ_GPU_NAMES.iter().any(|g| n.contains(g)))
        })
        .collect();
    names.sort();
    names.into_iter().next()
}

#[cfg(test)]
pub(crate) mod fixture {
    use std::path::Path;

    /// Writes `text` at `root/rel`, creating its folders.
    pub fn put(root: &Path, rel: &str, text: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// An Orin on JetPack 6 as its files look: NUL-terminated model, the
    /// GPU's load under platform/gpu.0 and its devfreq clocks in Hz.
    pub fn orin(root: &Path) {
        put(
            root,
            "proc/device-tree/model",
            b"NVIDIA Jetson Orin Nano Developer Kit\0",
        );
        put(
            root,
            "proc/device-tree/compatible",
            b"nvidia,p3768-0000+p3767-0005\0nvidia,tegra234\0",
        );
        put(root, "sys/devices/platform/gpu.0/load", b"372\n");
        put(
            root,
            "sys/class/devfreq/17000000.gpu/cur_freq",
            b"624750000\n",
        );
        put(
            root,
            "sys/class/devfreq/17000000.gpu/max_freq",
            b"1020000000\n",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{orin, put};
    use super::*;

    #[test]
    fn an_orin_tree_gives_its_model_load_and_clocks() {
        let dir = tempfile::tempdir().unwrap();
        orin(dir.path());
        let t = Tegra::detect(dir.path()).expect("a Jetson");
        assert_eq!(t.model(), "NVIDIA Jetson Orin Nano Developer Kit");
        let s = t.sample();
        assert_eq!(s.utilization_percent, Some(37.2));
        assert_eq!(s.freq_mhz, Some(624));
        assert_eq!(s.max_freq_mhz, Some(1020));
    }

    #[test]
    fn a_jetpack5_tree_with_the_old_load_node_and_no_devfreq_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "proc/device-tree/model", b"Jetson-AGX\0");
        put(dir.path(), "sys/devices/gpu.0/load", b"1000");
        let s = Tegra::detect(dir.path()).unwrap().sample();
        assert_eq!(s.utilization_percent, Some(100.0));
        assert_eq!((s.freq_mhz, s.max_freq_mhz), (None, None));
    }

    #[test]
    fn a_tegra_compatible_without_a_jetson_model_counts_and_unreadable_nodes_are_none() {
        let dir = tempfile::tempdir().unwrap();
        put(
            dir.path(),
            "proc/device-tree/compatible",
            b"nvidia,tegra194\0",
        );
        put(dir.path(), "sys/devices/platform/gpu.0/load", b"garbage");
        let t = Tegra::detect(dir.path()).unwrap();
        assert_eq!(t.model(), "NVIDIA Jetson");
        assert_eq!(t.sample(), TegraSample::default());
    }

    #[test]
    fn a_pc_or_a_raspberry_pi_is_not_a_jetson() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Tegra::detect(dir.path()).is_none());
        put(
            dir.path(),
            "proc/device-tree/model",
            b"Raspberry Pi 4 Model B Rev 1.4\0",
        );
        put(dir.path(), "proc/device-tree/compatible", b"brcm,bcm2711\0");
        assert!(Tegra::detect(dir.path()).is_none());
    }
}
