//! The recordings folder and its index, kept in step.
//!
//! ffmpeg writes chunks into `<camera>/.inprogress/` and appends a
//! `name,start,end` line (media seconds) to its list when a chunk is complete.
//! Only then is the chunk renamed to `<camera>/<start_ms>.mp4` and indexed, so
//! the index never holds a chunk that is still being written. Times are the
//! run's start (its id, epoch ms) plus the chunk's media timestamps, so the
//! timeline never claims more than the file holds. Retention moves a chunk
//! to `<camera>/.trash/` before dropping its row and then deletes the file.
//! Every crash point between those steps is repaired by [`Chunks::reconcile`]
//! at startup, after the ffmpeg children of a dead daemon (named by
//! `<run>.pid` files) have finished closing their chunks.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::child::{pid_file, wait_for_dead_runs};
use super::IngestError;
use crate::nvr::store::{db, Recording, Store};
use crate::paths::Recordings;

/// How long the startup reconciliation waits for a dead daemon's ffmpeg
/// children to close their chunks before it kills them.
const DEAD_RUN_WAIT: Duration = Duration::from_secs(30);

/// One line of ffmpeg's csv segment list: a finished chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub file: String,
    pub start_s: f64,
    pub end_s: f64,
}

impl Segment {
    /// Parses `name,start,end`; `None` for anything else (a torn last line).
    pub fn parse(line: &str) -> Option<Segment> {
        let mut it = line.trim_end().rsplitn(3, ',');
        let end_s: f64 = it.next()?.parse().ok()?;
        let start_s: f64 = it.next()?.parse().ok()?;
        let file = it.next()?.trim_matches('"').to_owned();
        let plain = !file.is_empty() && !file.contains('/') && !file.starts_with('.');
        (plain && start_s.is_finite() && end_s.is_finite()).then_some(Segment {
            file,
            start_s,
            end_s,
        })
    }
}

/// Follows a segment list ffmpeg appends to, returning only whole lines.
#[derive(Debug)]
pub struct ListTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl ListTail {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    /// New complete segments since the last poll (none if the file is not there yet).
    pub fn poll(&mut self) -> Vec<Segment> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut text = String::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_string(&mut text).is_err() {
            return Vec::new();
        }
        self.offset += text.len() as u64;
        self.partial.push_str(&text);
        let mut out = Vec::new();
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            out.extend(Segment::parse(&line));
        }
        out
    }
}

/// What a startup reconciliation did, for the log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reconciled {
    /// Chunks found complete on disk but missing from the index.
    pub indexed: usize,
    /// Files that were unplayable leftovers or retention's trash.
    pub removed: usize,
    /// Index rows whose file was gone.
    pub dropped_rows: usize,
}

/// The recordings folder and the index rows that describe it.
#[derive(Clone)]
pub struct Chunks {
    root: Recordings,
    store: Store,
    ffprobe: PathBuf,
}

impl Chunks {
    pub fn new(root: Recordings, store: Store, ffprobe: PathBuf) -> Self {
        Self {
            root,
            store,
            ffprobe,
        }
    }

    /// `<root>/<camera>/.inprogress`, where a run's ffmpeg writes.
    pub fn inprogress_dir(&self, camera: &str) -> PathBuf {
        self.root.inprogress(camera)
    }

    /// Moves a finished chunk of run `run_id` into place and indexes it.
    /// Returns the new row, or `None` when the chunk was empty or already gone.
    pub async fn finish(
        &self,
        camera: &str,
        run_id: i64,
        seg: &Segment,
    ) -> Result<Option<Recording>, IngestError> {
        let start_ms = run_id + (seg.start_s * 1000.0).round() as i64;
        let end_ms = run_id + (seg.end_s * 1000.0).round() as i64;
        let src = self.inprogress_dir(camera).join(&seg.file);
        let cam_dir = self.root.camera(camera);
        let placed = tokio::task::spawn_blocking(move || place(&src, &cam_dir, start_ms, end_ms))
            .await
            .map_err(|_| IngestError::Internal("placing a chunk"))??;
        let Some((name, size)) = placed else {
            return Ok(None);
        };
        let rec = Recording {
            id: 0,
            camera_id: camera.to_owned(),
            start_ms,
            end_ms,
            size_bytes: size as i64,
            path: format!("{camera}/{name}"),
        };
        let row = rec.clone();
        let id = self
            .store
            .writer()
            .call(move |c, _| {
                db::add_recording(
                    c,
                    &row.camera_id,
                    row.start_ms,
                    row.end_ms,
                    row.size_bytes,
                    &row.path,
                )
            })
            .await?;
        Ok(Some(Recording { id, ..rec }))
    }

    /// Deletes chunks: file to `.trash`, row dropped, file unlinked. A crash
    /// anywhere leaves either the row and its file, or trash that the next
    /// start deletes; never a row without a file that was meant to stay.
    pub async fn retire(&self, recs: Vec<Recording>) -> Result<usize, IngestError> {
        if recs.is_empty() {
            return Ok(0);
        }
        let root = self.root.clone();
        let moved = {
            let recs = recs.clone();
            tokio::task::spawn_blocking(move || {
                let mut trashed = Vec::new();
                for r in &recs {
                    let Some((cam, name)) = r.path.split_once('/') else {
                        continue;
                    };
                    let trash = root.trash(cam);
                    let dest = trash.join(name);
                    let ok = std::fs::create_dir_all(&trash)
                        .and_then(|_| std::fs::rename(root.chunk(&r.path), &dest));
                    match ok {
                        Ok(()) => trashed.push(dest),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => tracing::warn!(path = %r.path, error = %e, "cannot retire chunk"),
                    }
                }
                trashed
            })
            .await
            .map_err(|_| IngestError::Internal("retiring chunks"))?
        };
        let ids: Vec<i64> = recs.iter().map(|r| r.id).collect();
        self.store
            .writer()
            .call(move |c, _| db::delete_recordings(c, &ids))
            .await?;
        for f in &moved {
            let _ = std::fs::remove_file(f);
        }
        Ok(recs.len())
    }

    /// Makes the folder and the index agree after any crash: trash deleted,
    /// finished chunks of dead runs indexed (unplayable leftovers removed),
    /// placed-but-unindexed chunks indexed, rows without files dropped.
    /// Run before any camera starts.
    pub async fn reconcile(&self) -> Result<Reconciled, IngestError> {
        let root = self.root.clone();
        let mut report = Reconciled::default();
        let cams = tokio::task::spawn_blocking(move || {
            let cams = camera_dirs(root.root());
            let runs: Vec<PathBuf> = cams.iter().map(|c| root.inprogress(c)).collect();
            wait_for_dead_runs(&runs, DEAD_RUN_WAIT);
            cams
        })
        .await
        .map_err(|_| IngestError::Internal("listing recordings"))?;
        let indexed: HashMap<String, Recording> = self
            .store
            .read(db::all_recordings)
            .await?
            .into_iter()
            .map(|r| (r.path.clone(), r))
            .collect();
        let mut stale_rows = Vec::new();
        for cam in &cams {
            for f in files(&self.root.trash(cam)) {
                let rel = format!("{cam}/{}", file_name(&f));
                stale_rows.extend(indexed.get(&rel).cloned());
                report.removed += usize::from(std::fs::remove_file(&f).is_ok());
            }
            self.reconcile_runs(cam, &mut report).await?;
            for f in files(&self.root.camera(cam)) {
                let name = file_name(&f);
                let rel = format!("{cam}/{name}");
                if !name.ends_with(".mp4") || indexed.contains_key(&rel) {
                    continue;
                }
                // Placed just now by `reconcile_runs` (after `indexed` was read)?
                let r = rel.clone();
                if self
                    .store
                    .read(move |c| db::recording_indexed(c, &r))
                    .await?
                {
                    continue;
                }
                match (start_of(&name), self.probe(&f).await) {
                    (Some(start), Some(dur)) => {
                        let size = std::fs::metadata(&f).map(|m| m.len() as i64).unwrap_or(0);
                        let (cam, end) = (cam.clone(), start + (dur * 1000.0).round() as i64);
                        self.store
                            .writer()
                            .call(move |c, _| db::add_recording(c, &cam, start, end, size, &rel))
                            .await?;
                        report.indexed += 1;
                    }
                    _ => report.removed += usize::from(std::fs::remove_file(&f).is_ok()),
                }
            }
        }
        let root = self.root.clone();
        stale_rows.extend(
            indexed
                .into_values()
                .filter(|r| !root.chunk(&r.path).is_file()),
        );
        report.dropped_rows = stale_rows.len();
        let ids: Vec<i64> = stale_rows.iter().map(|r| r.id).collect();
        self.store
            .writer()
            .call(move |c, _| db::delete_recordings(c, &ids))
            .await?;
        Ok(report)
    }

    /// Finishes what dead runs left in `.inprogress`.
    async fn reconcile_runs(&self, cam: &str, report: &mut Reconciled) -> Result<(), IngestError> {
        let dir = self.inprogress_dir(cam);
        let mut runs: BTreeMap<i64, Vec<PathBuf>> = BTreeMap::new();
        for f in files(&dir) {
            let name = file_name(&f);
            match name.split(['-', '.']).next().and_then(|r| r.parse().ok()) {
                Some(run) => runs.entry(run).or_default().push(f),
                None => report.removed += usize::from(std::fs::remove_file(&f).is_ok()),
            }
        }
        for run in runs.into_keys() {
            let (indexed, removed) = self.close_run(cam, run).await?;
            report.indexed += indexed;
            report.removed += removed;
        }
        Ok(())
    }

    /// Closes the books on run `run` of `cam` once its ffmpeg has exited:
    /// chunks it listed are placed and indexed; an unlisted chunk (the one it
    /// was writing when it died) is kept if ffprobe can play it and deleted
    /// otherwise; the run's list and pid file go. Returns (indexed, removed).
    pub async fn close_run(&self, cam: &str, run: i64) -> Result<(usize, usize), IngestError> {
        let dir = self.inprogress_dir(cam);
        let (mut indexed, mut removed) = (0, 0);
        let listed = ListTail::new(dir.join(format!("{run}.csv"))).poll();
        let mut end_s: f64 = 0.0;
        for seg in &listed {
            end_s = end_s.max(seg.end_s);
            indexed += usize::from(self.finish(cam, run, seg).await?.is_some());
        }
        let prefix = format!("{run}-");
        for f in files(&dir) {
            let name = file_name(&f);
            if !name.starts_with(&prefix) || !name.ends_with(".mp4") {
                continue;
            }
            let seg = match self.probe(&f).await {
                Some(dur) => Segment {
                    file: name,
                    start_s: end_s,
                    end_s: end_s + dur,
                },
                None => {
                    removed += usize::from(std::fs::remove_file(&f).is_ok());
                    continue;
                }
            };
            end_s = seg.end_s;
            indexed += usize::from(self.finish(cam, run, &seg).await?.is_some());
        }
        for leftover in [format!("{run}.csv"), format!("{run}.log")] {
            let _ = std::fs::remove_file(dir.join(leftover));
        }
        let _ = std::fs::remove_file(pid_file(&dir, run));
        Ok((indexed, removed))
    }

    /// [`probe_duration`] off the async threads.
    async fn probe(&self, file: &Path) -> Option<f64> {
        let (ffprobe, file) = (self.ffprobe.clone(), file.to_owned());
        tokio::task::spawn_blocking(move || probe_duration(&ffprobe, &file))
            .await
            .ok()
            .flatten()
    }
}

/// The playable duration of an MP4 by ffprobe (blocking); `None` when it
/// does not play (no `moov`: ffmpeg was killed before closing it).
pub fn probe_duration(ffprobe: &Path, file: &Path) -> Option<f64> {
    let out = std::process::Command::new(ffprobe)
        .args(["-v", "error", "-show_entries", "format=duration"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .ok()?;
    let dur: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (out.status.success() && dur.is_finite() && dur > 0.05).then_some(dur)
}

/// Renames `src` to `<cam_dir>/<start_ms>.mp4` (or `-N` if taken).
fn place(
    src: &Path,
    cam_dir: &Path,
    start_ms: i64,
    end_ms: i64,
) -> Result<Option<(String, u64)>, IngestError> {
    let size = match std::fs::metadata(src) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if end_ms <= start_ms || size == 0 {
        let _ = std::fs::remove_file(src);
        return Ok(None);
    }
    let mut name = format!("{start_ms}.mp4");
    let mut n = 1;
    while cam_dir.join(&name).exists() {
        name = format!("{start_ms}-{n}.mp4");
        n += 1;
    }
    std::fs::rename(src, cam_dir.join(&name))?;
    Ok(Some((name, size)))
}

/// The start time a placed chunk's name carries (`<start_ms>[-N].mp4`).
fn start_of(name: &str) -> Option<i64> {
    name.strip_suffix(".mp4")?.split('-').next()?.parse().ok()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Plain files directly in `dir`, sorted (none if it does not exist).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    entries(dir, false)
        .into_iter()
        .map(|n| dir.join(n))
        .collect()
}

/// Camera folders under the recordings root (not `.`-hidden), sorted.
pub fn camera_dirs(root: &Path) -> Vec<String> {
    let mut v = entries(root, true);
    v.retain(|n| !n.starts_with('.'));
    v
}

/// Sorted names of the sub-folders (`dirs`) or plain files of `dir`.
pub fn entries(dir: &Path, dirs: bool) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter(|e| {
            e.file_type()
                .is_ok_and(|t| if dirs { t.is_dir() } else { t.is_file() })
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_lines_parse_and_unsafe_names_are_refused() {
        assert_eq!(
            Segment::parse("17-000001.mp4,2.200000,4.200000\n"),
            Some(Segment {
                file: "17-000001.mp4".into(),
                start_s: 2.2,
                end_s: 4.2
            })
        );
        assert_eq!(Segment::parse("../x.mp4,0,1"), None);
        assert_eq!(Segment::parse("a.mp4,0"), None);
        assert_eq!(Segment::parse("a.mp4,zero,1"), None);
    }

    #[test]
    fn list_tail_returns_whole_lines_once() {
        let dir = std::env::temp_dir().join(format!("onvr-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("1.csv");
        let mut t = ListTail::new(p.clone());
        assert!(t.poll().is_empty());
        std::fs::write(&p, "1-000000.mp4,0.0,2.0\n1-000001.mp4,2.0,").unwrap();
        assert_eq!(t.poll().len(), 1);
        std::fs::write(&p, "1-000000.mp4,0.0,2.0\n1-000001.mp4,2.0,4.0\n").unwrap();
        let got = t.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].end_s, 4.0);
        assert!(t.poll().is_empty());
        assert_eq!(start_of("1700000000123-2.mp4"), Some(1_700_000_000_123));
        assert_eq!(start_of("x.mp4"), None);
    }
}
