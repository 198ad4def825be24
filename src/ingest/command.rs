//! The ffmpeg command line for one camera: one process that both records
//! (stream copy into MP4 chunks) and decodes frames for detection, which it
//! writes raw as `latest.ppm` (rgb24; temp file + rename, so never torn;
//! see `raw`). A camera with a `detect_url` runs two: one records the main
//! stream, the other decodes the sub-stream (`camera`).
//!
//! One process per camera means the camera is opened once (many cameras
//! allow only a few RTSP sessions) and recording never depends on the
//! detector keeping up: the segment muxer copies packets, the second output
//! decodes at the detect rate only.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{Hwaccel, IngestConfig};
pub use crate::source_url::Source;

/// How a camera's video gets into MP4 chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encode {
    /// Stream copy: no decoding, near-free; only for H.264 and H.265.
    Copy,
    /// Re-encoded to H.264 with libx264 (any codec ffmpeg can decode).
    Transcode,
}

impl Encode {
    /// The name shown in the camera's status (`record_method`).
    pub fn as_str(self) -> &'static str {
        match self {
            Encode::Copy => "copy",
            Encode::Transcode => "transcode",
        }
    }
}

/// libx264 settings shared by live transcoding and the demo's one-off
/// transcode: `veryfast` keeps a 768x576 10 fps clip near 8 % of one core.
pub fn x264_args(preset: &str) -> Vec<OsString> {
    [
        "-c:v", "libx264", "-preset", preset, "-crf", "26", "-pix_fmt", "yuv420p",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// The input options and input of `source` (no `-i`): socket timeouts for
/// network sources, real-time looping for files when `live`.
pub fn input_args(source: &Source, cfg: &IngestConfig, live: bool) -> Vec<OsString> {
    let timeout_us = (u64::from(cfg.io_timeout_s.max(1)) * 1_000_000).to_string();
    let (opts, input): (Vec<&str>, OsString) = match source {
        Source::Rtsp(url) => (
            vec![
                "-rtsp_transport",
                &cfg.rtsp_transport,
                "-timeout",
                &timeout_us,
            ],
            url.into(),
        ),
        Source::Network(url) => (vec!["-rw_timeout", &timeout_us], url.into()),
        Source::File(p) if live => (vec!["-re", "-stream_loop", "-1"], p.into()),
        Source::File(p) => (vec![], p.into()),
    };
    let mut a: Vec<OsString> = opts.into_iter().map(OsString::from).collect();
    a.push(input);
    a
}

/// Everything that decides one ffmpeg run.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub source: &'a Source,
    /// `Some(file)`: decode frames into this raw PPM, replaced atomically
    /// at `fps`, and once a second into the JPEG of the same name (the live
    /// frame); `None`: record only (the sub-stream feeds the detector).
    pub frames: Option<&'a Path>,
    pub cfg: &'a IngestConfig,
    /// Frames per second handed to the detector (to `latest.ppm`).
    pub fps: f64,
    /// `Some(dir)`: record chunks into `dir` (the camera's `.inprogress`).
    pub record_into: Option<&'a Path>,
    /// How chunks are encoded (ignored when not recording).
    pub encode: Encode,
    /// Names this run's files: `<run>-000000.mp4`, `<run>.csv`.
    pub run_id: i64,
    /// Decode on the GPU (`-hwaccel cuda`); see [`hwaccel_args`].
    pub hwaccel: bool,
}

impl Plan<'_> {
    /// The segment list ffmpeg appends a `name,start,end` line to per finished chunk.
    pub fn list_path(dir: &Path, run_id: i64) -> PathBuf {
        dir.join(format!("{run_id}.csv"))
    }

    /// The arguments after `ffmpeg`.
    pub fn args(&self) -> Vec<OsString> {
        // No -nostdin: the supervisor stops ffmpeg with `q` on stdin.
        // -y: latest.ppm is replaced, and ffmpeg would otherwise ask on stdin.
        let mut a: Vec<OsString> = ["-hide_banner", "-loglevel", "error", "-nostats", "-y"]
            .map(OsString::from)
            .into();
        let mut input = input_args(self.source, self.cfg, true);
        let src = input.pop().unwrap_or_default();
        a.extend(hwaccel_args(self.hwaccel));
        a.extend(input);
        a.push("-i".into());
        a.push(src);
        if let Some(dir) = self.record_into {
            let segment = self.cfg.segment_s.max(1).to_string();
            a.extend(["-map", "0:v:0"].map(OsString::from));
            match self.encode {
                Encode::Copy => a.extend(["-c:v", "copy"].map(OsString::from)),
                Encode::Transcode => {
                    // yuv420p needs even sizes; a no-op for the usual ones.
                    a.extend(["-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"].map(OsString::from));
                    a.extend(x264_args(&self.cfg.transcode_preset));
                    // A keyframe at each chunk boundary, so chunks are cut on time.
                    a.push("-force_key_frames".into());
                    a.push(
                        format!("expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+{segment}))")
                            .into(),
                    );
                }
            }
            let more = [
                "-f",
                "segment",
                "-segment_time",
                &segment,
                "-segment_format",
                "mp4",
                "-reset_timestamps",
                "1",
                "-segment_list_type",
                "csv",
            ];
            a.extend(more.iter().map(OsString::from));
            a.push("-segment_list".into());
            a.push(Self::list_path(dir, self.run_id).into());
            a.push(dir.join(format!("{}-%06d.mp4", self.run_id)).into());
        }
        if let Some(latest) = self.frames {
            let width = self.cfg.max_frame_width.max(16);
            let fps = fmt_fps(self.fps);
            image2_output(
                &mut a,
                &fps,
                width,
                &["-pix_fmt", "rgb24", "-c:v", "ppm"],
                latest,
            );
            // The live JPEG beside it (the snapshot route, `/infer` by URI),
            // once a second: ffmpeg's encoder costs ~6 ms a frame, image's ~80
            // (the snapshots' jpeg-encoder: `benches/pixels.rs`).
            let jpeg = latest.with_extension("jpg");
            image2_output(&mut a, "1", width, &["-c:v", "mjpeg", "-q:v", "4"], &jpeg);
        }
        a
    }
}

/// One more output of the first video stream: `fps` frames a second, no
/// wider than `width`, encoded by `codec`, each written over `path` whole
/// (`-update 1 -atomic_writing 1`: readers see the old frame or the new one).
fn image2_output(a: &mut Vec<OsString>, fps: &str, width: u32, codec: &[&str], path: &Path) {
    let filter = format!("fps={fps},scale='min({width},iw)':-2");
    a.extend(["-map", "0:v:0", "-vf", &filter].iter().map(OsString::from));
    a.extend(codec.iter().map(OsString::from));
    let tail = ["-f", "image2", "-update", "1", "-atomic_writing", "1"];
    a.extend(tail.iter().map(OsString::from));
    a.push(path.into());
}

/// The input options that decode on the GPU: NVDEC through `-hwaccel cuda`.
/// Frames come back to system memory, so the filters and the JPEG encoder
/// after it are unchanged; stream-copied recording never decodes at all.
pub fn hwaccel_args(on: bool) -> Vec<OsString> {
    if on {
        vec!["-hwaccel".into(), "cuda".into()]
    } else {
        Vec::new()
    }
}

/// Whether ffmpeg's log says the GPU decoder could not be set up (no
/// libcuda, no device, a codec NVDEC lacks): the camera is then restarted
/// with software decoding.
pub fn hwaccel_failed(log: &str) -> bool {
    const SIGNS: &[&str] = &[
        "hwaccel",
        "device creation failed",
        "device setup failed",
        "no device available for decoder",
        "could not dynamically load cuda",
        "cannot load libcuda",
        "cuvid",
        "nvdec",
    ];
    let log = log.to_lowercase();
    SIGNS.iter().any(|s| log.contains(s))
}

/// Whether `hwaccel` asks for GPU decoding on this box. `auto` asks for it
/// when an NVIDIA device node exists (`dev`, `/dev/nvidia0` on a box) and
/// this ffmpeg lists `cuda` among its hardware decoders (`hwaccels`, the
/// output of `ffmpeg -hwaccels`).
pub fn hwaccel_wanted(hwaccel: Hwaccel, dev: &Path, hwaccels: impl FnOnce() -> String) -> bool {
    match hwaccel {
        Hwaccel::None => false,
        Hwaccel::Cuda => true,
        Hwaccel::Auto => dev.exists() && hwaccels().lines().any(|l| l.trim() == "cuda"),
    }
}

/// `ffmpeg -hwaccels`' output (empty when ffmpeg cannot run): the
/// hardware decoders this build of ffmpeg knows.
pub fn ffmpeg_hwaccels(ffmpeg: &Path) -> String {
    std::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-hwaccels"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A frame rate as ffmpeg's `fps` filter takes it, without float noise.
fn fmt_fps(fps: f64) -> String {
    let f = if fps.is_finite() && fps > 0.0 {
        fps
    } else {
        1.0
    };
    let s = format!("{f:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(src: &Source, record: Option<&Path>) -> Vec<String> {
        args_with(src, record, Encode::Copy)
    }

    fn args_with(src: &Source, record: Option<&Path>, encode: Encode) -> Vec<String> {
        let cfg = IngestConfig::default();
        Plan {
            source: src,
            frames: Some(Path::new("/f/c/latest.ppm")),
            cfg: &cfg,
            fps: 5.0,
            record_into: record,
            encode,
            run_id: 42,
            hwaccel: false,
        }
        .args()
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect()
    }

    #[test]
    fn rtsp_records_and_decodes_in_one_process() {
        let a = args(
            &Source::parse("rtsp://cam/s").unwrap(),
            Some(Path::new("/r/c/.inprogress")),
        );
        let joined = a.join(" ");
        assert!(joined.contains("-rtsp_transport tcp -timeout 10000000 -i rtsp://cam/s"));
        assert!(joined.contains("-c:v copy -f segment -segment_time 60"));
        assert!(
            joined.contains("-segment_list /r/c/.inprogress/42.csv /r/c/.inprogress/42-%06d.mp4")
        );
        assert!(joined.ends_with(
            "-vf fps=5,scale='min(1280,iw)':-2 -pix_fmt rgb24 -c:v ppm -f image2 -update 1 -atomic_writing 1 /f/c/latest.ppm \
             -map 0:v:0 -vf fps=1,scale='min(1280,iw)':-2 -c:v mjpeg -q:v 4 -f image2 -update 1 -atomic_writing 1 /f/c/latest.jpg"
        ));
        assert!(!joined.contains("-stream_loop"));
    }

    #[test]
    fn files_loop_in_real_time_and_record_can_be_off() {
        let a = args(&Source::parse("/v/a.mp4").unwrap(), None);
        let joined = a.join(" ");
        assert!(joined.contains("-re -stream_loop -1 -i /v/a.mp4"));
        assert!(!joined.contains("segment"));
        assert_eq!(fmt_fps(2.5), "2.5");
        assert_eq!(fmt_fps(0.0), "1");
    }

    #[test]
    fn hwaccel_goes_before_the_input_options_and_auto_needs_a_device_and_ffmpeg_support() {
        let cfg = IngestConfig::default();
        let src = Source::parse("rtsp://cam/s").unwrap();
        let plan = Plan {
            source: &src,
            frames: Some(Path::new("/l.ppm")),
            cfg: &cfg,
            fps: 1.0,
            record_into: None,
            encode: Encode::Copy,
            run_id: 1,
            hwaccel: true,
        };
        let joined: Vec<String> = plan
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert!(joined
            .join(" ")
            .contains("-y -hwaccel cuda -rtsp_transport tcp"));
        let dir = tempfile::tempdir().unwrap();
        let (dev, listed) = (dir.path().join("nvidia0"), || {
            "Hardware acceleration methods:\nvdpau\ncuda\n".to_owned()
        });
        assert!(
            !hwaccel_wanted(Hwaccel::Auto, &dev, listed),
            "no device node"
        );
        std::fs::write(&dev, b"").unwrap();
        assert!(hwaccel_wanted(Hwaccel::Auto, &dev, listed));
        assert!(!hwaccel_wanted(Hwaccel::Auto, &dev, || "vaapi\n".to_owned()));
        assert!(hwaccel_wanted(
            Hwaccel::Cuda,
            Path::new("/nonexistent"),
            String::new
        ));
        assert!(!hwaccel_wanted(Hwaccel::None, &dev, listed));
    }

    /// ffmpeg's own words on a box without CUDA (this one): the signs match,
    /// and a camera that is merely unreachable does not.
    #[test]
    fn a_failed_gpu_decoder_is_told_apart_from_an_unreachable_camera() {
        let no_cuda = "[AVHWDeviceContext @ 0x5582] Cannot load libcuda.so.1\n\
            Device creation failed: -1.\n\
            [h264 @ 0x5582] No device available for decoder: device type cuda needed for codec h264.";
        assert!(hwaccel_failed(no_cuda));
        assert!(!hwaccel_failed(
            "rtsp://cam/s: Connection refused\nError opening input file rtsp://cam/s."
        ));
    }

    #[test]
    fn transcoding_records_h264_with_a_keyframe_per_chunk() {
        let src = Source::parse("file:///v/vtest.avi").unwrap();
        let joined = args_with(&src, Some(Path::new("/r")), Encode::Transcode).join(" ");
        assert!(joined.contains(
            "-map 0:v:0 -vf scale=trunc(iw/2)*2:trunc(ih/2)*2 -c:v libx264 -preset veryfast -crf 26 -pix_fmt yuv420p -force_key_frames expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+60)) -f segment"
        ));
        assert!(!joined.contains("copy"));
        assert_eq!(
            input_args(&src, &IngestConfig::default(), false),
            vec![OsString::from("/v/vtest.avi")]
        );
    }
}
