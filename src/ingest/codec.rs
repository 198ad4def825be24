//! Which codec a camera sends, and so how it is recorded (`record_mode`).
//!
//! MP4 chunks hold H.264 and H.265 by stream copy, which costs next to no
//! CPU. Other codecs (MJPEG from cheap HTTP cameras, MPEG-4 part 2, the
//! msmpeg4 of Debian's `vtest.avi`) make the MP4 muxer fail ("codec not
//! currently supported in container"), so `auto` probes the codec at each
//! start with ffprobe (bounded by `probe_timeout_s`) and transcodes those to
//! H.264. When neither works, the camera says why ([`record_failure`]).

use std::process::Stdio;
use std::time::Duration;

use super::child::last_line_of;
use super::command::{input_args, Encode, Source};
use super::IngestError;
use crate::config::IngestConfig;
use crate::nvr::store::RecordMode;
use crate::redact::Secrets;

/// Codecs recorded by stream copy in `auto` mode (ffprobe's names).
const COPYABLE: &[&str] = &["h264", "hevc"];

/// How a camera in `mode` whose video is `codec` (probed; `None` when not
/// probed) is recorded.
pub fn choose(mode: RecordMode, codec: Option<&str>) -> Encode {
    match mode {
        RecordMode::Copy => Encode::Copy,
        RecordMode::Transcode => Encode::Transcode,
        RecordMode::Auto if codec.is_some_and(|c| COPYABLE.contains(&c)) => Encode::Copy,
        RecordMode::Auto => Encode::Transcode,
    }
}

/// The codec of the source's first video stream, by ffprobe, within
/// `probe_timeout_s`. Errors carry ffprobe's last line, scrubbed of `secrets`.
pub async fn probe(
    cfg: &IngestConfig,
    source: &Source,
    secrets: &Secrets,
) -> Result<String, IngestError> {
    let mut cmd = tokio::process::Command::new(&cfg.ffprobe);
    cmd.args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .args(input_args(source, cfg, false))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limit = Duration::from_secs(u64::from(cfg.probe_timeout_s.max(1)));
    let fail = |why: String| IngestError::Probe(secrets.scrub(&why));
    let out = match tokio::time::timeout(limit, cmd.output()).await {
        Err(_) => return Err(fail(format!("no answer within {}s", limit.as_secs()))),
        Ok(Err(e)) => return Err(IngestError::Spawn(cfg.ffprobe.display().to_string(), e)),
        Ok(Ok(out)) => out,
    };
    let codec = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned);
    match codec {
        Some(c) if out.status.success() => Ok(c),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = last_line_of(&err);
            Err(fail(if line.is_empty() {
                "no video stream".into()
            } else {
                line.to_owned()
            }))
        }
    }
}

/// What ffmpeg says when the recording output (output #0) cannot be set up.
const RECORD_FAILURES: &[&str] = &[
    "codec not currently supported in container",
    "Could not find tag for codec",
    "Unknown encoder",
    "Error while opening encoder",
    "Could not write header for output file #0",
    "Error initializing output stream 0:",
];

/// When a recording ffmpeg run died because its video cannot be recorded
/// the way it was asked to, the most telling line of its log.
pub fn record_failure(log: &str) -> Option<&str> {
    RECORD_FAILURES
        .iter()
        .find_map(|sig| log.lines().map(str::trim).find(|l| l.contains(sig)))
}

/// The error a camera shows when its video cannot be recorded.
pub fn unrecordable_message(
    mode: RecordMode,
    encode: Encode,
    codec: Option<&str>,
    ffmpeg: &str,
) -> String {
    let codec = codec.unwrap_or("unknown codec");
    match encode {
        Encode::Copy => format!(
            "cannot record this camera's video ({codec}) by stream copy into MP4 \
             (record_mode \"{}\"); set record_mode to \"auto\" or \"transcode\" (ffmpeg: {ffmpeg})",
            mode.as_str()
        ),
        Encode::Transcode => format!(
            "cannot record this camera's video ({codec}) by transcoding to H.264 \
             (record_mode \"{}\") (ffmpeg: {ffmpeg})",
            mode.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_copies_h264_and_h265_and_transcodes_the_rest() {
        assert_eq!(choose(RecordMode::Auto, Some("h264")), Encode::Copy);
        assert_eq!(choose(RecordMode::Auto, Some("hevc")), Encode::Copy);
        for c in [Some("msmpeg4v3"), Some("mjpeg"), Some("mpeg4"), None] {
            assert_eq!(choose(RecordMode::Auto, c), Encode::Transcode, "{c:?}");
        }
        assert_eq!(choose(RecordMode::Copy, Some("mjpeg")), Encode::Copy);
        assert_eq!(
            choose(RecordMode::Transcode, Some("h264")),
            Encode::Transcode
        );
    }

    #[test]
    fn the_muxer_refusal_is_recognised_and_explained() {
        // Debian ffmpeg 5.1 on vtest.avi with -c:v copy into the segment muxer.
        let log = "[mp4 @ 0x5] Could not find tag for codec msmpeg4v3 in stream #0, codec not currently supported in container\n\
                   Could not write header for output file #0 (incorrect codec parameters ?): Invalid argument\n\
                   Error initializing output stream 0:0 -- \n";
        let line = record_failure(log).unwrap();
        assert!(line.contains("msmpeg4v3"), "{line}");
        let m = unrecordable_message(RecordMode::Copy, Encode::Copy, Some("msmpeg4v3"), line);
        assert!(
            m.contains("stream copy") && m.contains("\"transcode\""),
            "{m}"
        );
        assert_eq!(record_failure("rtsp://cam: Connection refused"), None);
        assert_eq!(last_line_of("a\nb\n\n  \n"), "b");
    }
}
