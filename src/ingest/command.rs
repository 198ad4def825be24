//! The ffmpeg command line for one camera: one process that both records
//! (stream copy into MP4 chunks) and decodes frames for detection, which it
//! writes as `latest.jpg` (temp file + rename, so never torn).
//!
//! One process per camera means the camera is opened once (many cameras
//! allow only a few RTSP sessions) and recording never depends on the
//! detector keeping up: the segment muxer copies packets, the second output
//! decodes at the detect rate only.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::IngestError;
use crate::config::IngestConfig;

/// Where a camera's video comes from, by URL scheme.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `rtsp://` or `rtsps://`: a live IP camera.
    Rtsp(String),
    /// `http(s)://` or `rtmp://`: a live stream.
    Network(String),
    /// `file://` or an absolute path: a clip replayed in real time, looped
    /// (the demo camera, and a way to test without hardware).
    File(PathBuf),
}

impl Source {
    /// Parses a stored `source_url`. Anything else is refused so a URL can
    /// never select one of ffmpeg's special protocols (`concat:`, `subfile,`...).
    pub fn parse(url: &str) -> Result<Source, IngestError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            Ok(Source::Rtsp(url.to_owned()))
        } else if ["http://", "https://", "rtmp://"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            Ok(Source::Network(url.to_owned()))
        } else if let Some(p) = url.strip_prefix("file://") {
            Self::file(p, url)
        } else if url.starts_with('/') {
            Self::file(url, url)
        } else {
            Err(IngestError::BadSource(url.to_owned()))
        }
    }

    fn file(path: &str, url: &str) -> Result<Source, IngestError> {
        if path.starts_with('/') {
            Ok(Source::File(PathBuf::from(path)))
        } else {
            Err(IngestError::BadSource(url.to_owned()))
        }
    }
}

/// Everything that decides one ffmpeg run.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub source: &'a Source,
    /// Where frames go: ffmpeg replaces this JPEG atomically at `fps`.
    pub latest: &'a Path,
    pub cfg: &'a IngestConfig,
    /// Frames per second handed to the detector (and to `latest.jpg`).
    pub fps: f64,
    /// `Some(dir)`: record chunks into `dir` (the camera's `.inprogress`).
    pub record_into: Option<&'a Path>,
    /// Names this run's files: `<run>-000000.mp4`, `<run>.csv`.
    pub run_id: i64,
}

impl Plan<'_> {
    /// The segment list ffmpeg appends a `name,start,end` line to per finished chunk.
    pub fn list_path(dir: &Path, run_id: i64) -> PathBuf {
        dir.join(format!("{run_id}.csv"))
    }

    /// The arguments after `ffmpeg`.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        // No -nostdin: the supervisor stops ffmpeg with `q` on stdin.
        // -y: latest.jpg is replaced, and ffmpeg would otherwise ask on stdin.
        for s in ["-hide_banner", "-loglevel", "error", "-nostats", "-y"] {
            push(s);
        }
        let timeout_us = (u64::from(self.cfg.io_timeout_s.max(1)) * 1_000_000).to_string();
        let input: OsString = match self.source {
            Source::Rtsp(url) => {
                for s in [
                    "-rtsp_transport",
                    &self.cfg.rtsp_transport,
                    "-timeout",
                    &timeout_us,
                ] {
                    push(s);
                }
                url.into()
            }
            Source::Network(url) => {
                for s in ["-rw_timeout", &timeout_us] {
                    push(s);
                }
                url.into()
            }
            Source::File(p) => {
                for s in ["-re", "-stream_loop", "-1"] {
                    push(s);
                }
                p.into()
            }
        };
        a.push("-i".into());
        a.push(input);
        if let Some(dir) = self.record_into {
            let segment = self.cfg.segment_s.max(1).to_string();
            let more = [
                "-map",
                "0:v:0",
                "-c:v",
                "copy",
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
        let filter = format!(
            "fps={},scale='min({},iw)':-2",
            fmt_fps(self.fps),
            self.cfg.max_frame_width.max(16)
        );
        let frames = [
            "-map",
            "0:v:0",
            "-vf",
            &filter,
            "-c:v",
            "mjpeg",
            "-q:v",
            "4",
            "-f",
            "image2",
            "-update",
            "1",
            "-atomic_writing",
            "1",
        ];
        a.extend(frames.iter().map(OsString::from));
        a.push(self.latest.into());
        a
    }
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
        let cfg = IngestConfig::default();
        Plan {
            source: src,
            latest: Path::new("/f/c/latest.jpg"),
            cfg: &cfg,
            fps: 5.0,
            record_into: record,
            run_id: 42,
        }
        .args()
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect()
    }

    #[test]
    fn sources_are_parsed_and_special_protocols_refused() {
        assert_eq!(
            Source::parse("rtsp://u:p@10.0.0.2/s").unwrap(),
            Source::Rtsp("rtsp://u:p@10.0.0.2/s".into())
        );
        assert_eq!(
            Source::parse("file:///v/a.mp4").unwrap(),
            Source::File("/v/a.mp4".into())
        );
        assert_eq!(
            Source::parse("/v/a.mp4").unwrap(),
            Source::File("/v/a.mp4".into())
        );
        for bad in [
            "concat:/a|/b",
            "subfile,,start,0,end,0,,:/etc/passwd",
            "file://rel",
            "x.mp4",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
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
            "-vf fps=5,scale='min(1280,iw)':-2 -c:v mjpeg -q:v 4 -f image2 -update 1 -atomic_writing 1 /f/c/latest.jpg"
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
}
