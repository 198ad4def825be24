//! Which kind of video source a camera's `source_url` names: one parser for
//! the camera API's validation and for ingest's ffmpeg command, so a URL that
//! passes validation is one ingest can start (and the other way round).
//! Schemes match in any case (`FILE:///a.mp4`, `RTSP://cam`).

use std::path::PathBuf;

/// A `source_url` that names no source we hand to ffmpeg. It carries the
/// URL with its secrets masked, so it can be shown and logged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "unsupported camera source {0:?}: rtsp://, rtsps://, http(s)://, rtmp://, file:///absolute/path or an absolute path"
)]
pub struct BadSource(String);

/// Where a camera's video comes from, by URL scheme.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `rtsp://` or `rtsps://`: a live IP camera.
    Rtsp(String),
    /// `http(s)://` or `rtmp://`: a live stream.
    Network(String),
    /// `file:///...` or an absolute path: a clip replayed in real time, looped
    /// (the demo camera, and a way to test without hardware).
    File(PathBuf),
}

impl Source {
    /// Parses a stored `source_url`. Anything else is refused so a URL can
    /// never select one of ffmpeg's special protocols (`concat:`, `subfile,`...).
    pub fn parse(url: &str) -> Result<Source, BadSource> {
        let bad = || BadSource(crate::redact::text(url));
        let scheme_is = |p: &str| {
            url.get(..p.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
        };
        if scheme_is("rtsp://") || scheme_is("rtsps://") {
            Ok(Source::Rtsp(url.to_owned()))
        } else if ["http://", "https://", "rtmp://"]
            .iter()
            .any(|p| scheme_is(p))
        {
            Ok(Source::Network(url.to_owned()))
        } else if scheme_is("file://") {
            // Only `file:///abs`: `file://host/x` and `file://rel` name no local file.
            let path = &url["file://".len()..];
            path.starts_with('/')
                .then(|| Source::File(PathBuf::from(path)))
                .ok_or_else(bad)
        } else if url.starts_with('/') {
            Ok(Source::File(PathBuf::from(url)))
        } else {
            Err(bad())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_parsed_and_special_protocols_refused() {
        assert_eq!(
            Source::parse("rtsp://u:p@10.0.0.2/s").unwrap(),
            Source::Rtsp("rtsp://u:p@10.0.0.2/s".into())
        );
        assert_eq!(
            Source::parse("RTSP://cam/s").unwrap(),
            Source::Rtsp("RTSP://cam/s".into())
        );
        for ok in [
            "file:///v/a.mp4",
            "FILE:///v/a.mp4",
            "File:///v/a.mp4",
            "/v/a.mp4",
        ] {
            assert_eq!(
                Source::parse(ok).unwrap(),
                Source::File("/v/a.mp4".into()),
                "{ok}"
            );
        }
        for bad in [
            "concat:/a|/b",
            "subfile,,start,0,end,0,,:/etc/passwd",
            "file://rel",
            "FILE://rel/a.mp4",
            "file:rel",
            "x.mp4",
            "",
            "é",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
        let e = Source::parse("ftp://u:hunter2@h/x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
