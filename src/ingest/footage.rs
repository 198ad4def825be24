//! Motion gating on real footage (test-only): clips made with ffmpeg from
//! Debian's real images and street clip, decoded to frames and fed through
//! [`Gating`] and the real engine and detector, as the camera worker does,
//! minus the daemon (frames are processed one by one, none dropped).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use image::RgbImage;

use super::gating::Gating;
use super::motion::MotionDetector;
use super::stats::CameraStats;
use super::tracks::{Emitted, Sighting, TrackEvents};
use crate::ai::{Engine, Params};
use crate::config::{Config, MotionConfig};
use crate::frame::Frame;

/// Frames per second, as cameras are analysed by default.
const FPS: u32 = 5;

/// One engine for these tests (the model loads once).
fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| new_engine(&test_config())).clone()
}

/// The default config with the test models.
fn test_config() -> Config {
    let mut cfg = Config::default();
    cfg.paths.models_dir = std::env::var_os("OPENNVR_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dist"));
    cfg
}

/// An engine of its own (its own runners) on `cfg`.
fn new_engine(cfg: &Config) -> Arc<Engine> {
    let catalog = crate::catalog::Catalog::open(&cfg.paths.models_dir)
        .expect("the test models (scripts/setup.sh)");
    Arc::new(Engine::new(
        cfg,
        catalog,
        Arc::new(crate::ai::backend::TractBackend),
        Arc::new(crate::clock::SystemClock),
    ))
}

/// Runs ffmpeg with `args`, panicking with its message on failure.
fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg (scripts/setup.sh)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg {args:?}: {err}");
    out.stdout
}

/// `input` decoded at [`FPS`] to RGB frames of `w`x`h` (`-vf` `filters` first).
fn frames(input: &[&str], filters: &str, w: u32, h: u32) -> Vec<RgbImage> {
    let vf = format!("{filters}fps={FPS},scale={w}:{h}");
    let mut args: Vec<&str> = input.to_vec();
    args.extend(["-vf", &vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    let raw = ffmpeg(&args);
    let n = (w * h * 3) as usize;
    raw.chunks_exact(n)
        .map(|c| RgbImage::from_raw(w, h, c.to_vec()).unwrap())
        .collect()
}

/// The real still as an H.264 camera clip of `secs` seconds with temporal
/// sensor noise and `more` filters, re-encoded (compression artefacts),
/// decoded back to frames.
fn still_clip(secs: u32, more: &str) -> Vec<RgbImage> {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("still.mp4");
    super::demo::quiet_clip(Path::new("ffmpeg"), secs, more, &clip).expect("ffmpeg");
    frames(&["-i", clip.to_str().unwrap()], "", 752, 564)
}

/// The first `secs` seconds of vtest (768x576).
fn vtest(secs: u32) -> Vec<RgbImage> {
    let t = secs.to_string();
    frames(&["-t", &t, "-i", super::demo::VTEST], "", 768, 576)
}

/// What a pipeline made of a clip: person entries (time, box) and how
/// often the detector ran (a crop or a full pass each).
#[derive(Debug)]
struct Run {
    entered: Vec<(i64, [f64; 4])>,
    /// `person_left` events.
    left: usize,
    /// Inferences: a crop or a full pass each (every frame, ungated).
    detector_runs: u64,
    gated: u64,
    /// Inferences on each frame, from the same counters.
    per_frame: Vec<u64>,
}

/// Feeds `clip` through a camera's gate, tracker and event rules, frame by
/// frame at [`FPS`], as `ingest::detect` does.
fn run(engine: &Engine, clip: &[RgbImage], motion: &MotionConfig) -> Run {
    let cfg = Config::default();
    let mut gate = Gating::with(motion, &motion.camera("cam"));
    let mut tracker = engine.person_tracker();
    let mut events = TrackEvents::new(
        cfg.ingest.min_hits,
        cfg.tracker.max_lost_ms,
        cfg.ingest.count_debounce_ms,
    );
    let stats = CameraStats::default();
    let mut entered = Vec::new();
    let mut left = 0;
    let mut whole_frames = 0;
    let mut per_frame = Vec::with_capacity(clip.len());
    let runs = |whole: u64| whole + stats.full_passes.load(Relaxed) + stats.regions.load(Relaxed);
    for (i, img) in clip.iter().enumerate() {
        let before = runs(whole_frames);
        let at = i as i64 * 1000 / i64::from(FPS);
        let f = Frame {
            image: Arc::new(img.clone()),
            camera: Some("cam".into()),
            timestamp_ms: Some(at),
        };
        let r = gate
            .count_people(engine, &mut tracker, &f, &Params::default(), &stats)
            .unwrap();
        events.hold(at, gate.held());
        events.matched(at, &tracker.matched_at(at));
        whole_frames += u64::from(r.is_some() && !motion.enabled);
        per_frame.push(runs(whole_frames) - before);
        let seen: Vec<Sighting> = r
            .iter()
            .flat_map(|r| &r.detections)
            .filter_map(|d| {
                Some(Sighting {
                    track_id: d.track_id.flatten()?,
                    bbox: d.bbox.map(f64::from),
                    score: d.confidence,
                })
            })
            .collect();
        for e in events.update(at, &seen, &()) {
            match e {
                Emitted::Entered { at, bbox, .. } => entered.push((at, bbox)),
                Emitted::Left { .. } => left += 1,
                Emitted::Count { .. } => {}
            }
        }
    }
    Run {
        entered,
        left,
        detector_runs: runs(whole_frames),
        gated: stats.gated.load(Relaxed),
        per_frame,
    }
}

fn gated() -> MotionConfig {
    MotionConfig::default()
}

#[test]
fn noise_and_compression_on_a_still_camera_are_not_motion() {
    let clip = still_clip(6, "");
    assert!(clip.len() >= 25, "{} frames", clip.len());
    let mut m = MotionDetector::new(&gated(), "cam");
    for (i, f) in clip.iter().enumerate() {
        let got = m.detect(f);
        assert!(got.boxes.is_empty() && !got.global, "frame {i}: {got:?}");
    }
    // Through the gate: one full pass (the first frame), nothing else.
    let r = run(&engine(), &clip, &gated());
    assert_eq!((r.detector_runs, r.entered.len()), (1, 0), "{r:?}");
    assert_eq!(r.gated as usize, clip.len() - 1);
}

#[test]
fn an_ir_switch_is_not_a_detection_storm() {
    // At 3 s the picture turns grey and brighter at once, as when a camera
    // switches to night mode.
    let clip = still_clip(6, ",eq=brightness=0.2:saturation=0:enable='gte(t,3)'");
    let mut m = MotionDetector::new(&gated(), "cam");
    let seen: Vec<_> = clip.iter().map(|f| m.detect(f)).collect();
    assert!(
        seen.iter().all(|s| s.boxes.is_empty()),
        "no motion boxes: {seen:?}"
    );
    let r = run(&engine(), &clip, &gated());
    assert_eq!((r.detector_runs, r.entered.len()), (1, 0), "{r:?}");
}

#[test]
fn people_walking_are_motion_where_they_walk() {
    let clip = vtest(8);
    let mut m = MotionDetector::new(&gated(), "cam");
    let moving = clip
        .iter()
        .skip(1)
        .filter(|f| !m.detect(f).boxes.is_empty())
        .count();
    assert!(moving >= clip.len() - 2, "{moving} of {}", clip.len() - 1);
}

/// Entries of `b` matching those of `a`: one to one, first sighting within
/// 1.5 s and centres within one box height.
fn matched(a: &[(i64, [f64; 4])], b: &[(i64, [f64; 4])]) -> usize {
    let mut used = vec![false; b.len()];
    let centre = |r: &[f64; 4]| (r[0] + r[2] / 2.0, r[1] + r[3] / 2.0);
    a.iter()
        .filter(|(t, ra)| {
            let (ax, ay) = centre(ra);
            let hit = b.iter().enumerate().position(|(j, (u, rb))| {
                let (bx, by) = centre(rb);
                !used[j] && (t - u).abs() <= 1_500 && (ax - bx).hypot(ay - by) <= ra[3].max(rb[3])
            });
            hit.inspect(|&j| used[j] = true).is_some()
        })
        .count()
}

/// Asserts the gated run `with` kept the people entering of the ungated
/// `base` (`what` names the clip in the messages), within the stated
/// tolerance: at most one ungated entry in five missed, and at most 30 %
/// (plus one) more entries than ungated: crops see distant people at full
/// resolution, where the letterboxed frame misses some, so gated may find
/// more, but no storm and no fragmenting. Returns the entries matched.
fn assert_recall_kept(what: &str, base: &Run, with: &Run) -> usize {
    let hits = matched(&base.entered, &with.entered);
    eprintln!(
        "{what} {} frames: ungated {} entries, {} runs; gated {} entries, {} runs, {} gated out; {} matched",
        base.per_frame.len(),
        base.entered.len(),
        base.detector_runs,
        with.entered.len(),
        with.detector_runs,
        with.gated,
        hits
    );
    assert!(
        hits * 5 >= base.entered.len() * 4,
        "{what}: {hits} of {base:?} in {with:?}"
    );
    assert!(
        with.entered.len() * 10 <= base.entered.len() * 13 + 10,
        "{what}: {with:?}"
    );
    hits
}

fn ungated() -> MotionConfig {
    MotionConfig {
        enabled: false,
        ..gated()
    }
}

#[test]
fn gating_keeps_the_people_entering_on_vtest() {
    let clip = vtest(16);
    let e = engine();
    let base = run(&e, &clip, &ungated());
    let with = run(&e, &clip, &gated());
    assert!(base.entered.len() >= 5, "{base:?}");
    assert_eq!(base.detector_runs as usize, clip.len());
    // Measured: 10 of 11 matched, 13 gated entries against 11.
    assert_recall_kept("vtest", &base, &with);
}

/// The crossings scene: a still street, then vtest's walkers from `.1` s
/// of vtest for [`WALK_S`], at each `.0` s of the clip.
const CROSSINGS: [(u32, u32); 2] = [(3, 4), (6, 22)];
/// Length of each crossing, seconds.
const WALK_S: u32 = 2;
/// Length of the whole crossings clip, seconds.
const CROSSINGS_S: u32 = 8;

/// A quiet camera where people cross now and then, as
/// `scripts/bench-ingest.py` makes it: the street of vtest without its
/// walkers (the temporal median of one frame a second over 51 s), with
/// per-frame sensor noise, cut to real vtest footage for [`WALK_S`] at
/// each of [`CROSSINGS`], encoded as H.264 (compression artefacts) and
/// decoded back at [`FPS`].
fn crossings() -> Vec<RgbImage> {
    let dir = tempfile::tempdir().unwrap();
    let (still, clip) = (street(dir.path()), dir.path().join("crossings.mp4"));
    let still_s = still.to_str().unwrap();
    let mut args: Vec<String> = ["-loop", "1", "-framerate", "10", "-i", still_s]
        .map(String::from)
        .to_vec();
    let mut graph = String::new();
    let mut last = "0:v".to_owned();
    for (i, (at, from)) in CROSSINGS.iter().enumerate() {
        let (from, len) = (from.to_string(), WALK_S.to_string());
        args.extend(["-ss", &from, "-t", &len, "-i", super::demo::VTEST].map(String::from));
        let n = i + 1;
        graph += &format!(
            "[{n}:v]setpts=PTS-STARTPTS+{at}/TB[w{n}];[{last}][w{n}]overlay=eof_action=pass[o{n}];"
        );
        last = format!("o{n}");
    }
    graph += &format!("[{last}]noise=alls=8:allf=t,format=yuv420p");
    let secs = CROSSINGS_S.to_string();
    args.extend(["-filter_complex", &graph, "-t", &secs, "-r", "10"].map(String::from));
    let x264 = super::command::x264_args("veryfast");
    args.extend(x264.iter().map(|a| a.to_string_lossy().into_owned()));
    args.push(clip.to_str().unwrap().to_owned());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    frames(&["-i", clip.to_str().unwrap()], "", 768, 576)
}

/// The street of vtest without its walkers (the temporal median of one
/// frame a second over 51 s), as a PNG in `dir`.
fn street(dir: &Path) -> PathBuf {
    let still = dir.join("street.png");
    let vf = "fps=1,tmedian=radius=25";
    let out = still.to_str().unwrap();
    ffmpeg(&[
        "-t",
        "52",
        "-i",
        super::demo::VTEST,
        "-vf",
        vf,
        "-frames:v",
        "1",
        out,
    ]);
    still
}

/// Length of the standing clip, seconds: two `full_pass_s` of the test
/// and a little (kept short: every frame of it is a detector run without
/// the stationary rule, slow in debug builds).
const STANDING_S: u32 = 7;

/// The quiet street with a real person standing in it for [`STANDING_S`]:
/// one walker of vtest's frame at 10 s (the man on the right, 50x95 px at
/// 580,145), cut out and laid on the street where he was, with per-frame
/// sensor noise, encoded as H.264 and decoded back at [`FPS`].
fn standing() -> Vec<RgbImage> {
    let dir = tempfile::tempdir().unwrap();
    let (still, man, clip) = (
        street(dir.path()),
        dir.path().join("man.png"),
        dir.path().join("standing.mp4"),
    );
    let man_s = man.to_str().unwrap();
    let cut = [
        "-ss",
        "10",
        "-i",
        super::demo::VTEST,
        "-vf",
        "crop=50:95:580:145",
    ];
    ffmpeg(&[&cut[..], &["-frames:v", "1", man_s]].concat());
    let secs = STANDING_S.to_string();
    let graph = "[0:v][1:v]overlay=580:145,noise=alls=8:allf=t,format=yuv420p";
    let mut args = vec!["-loop", "1", "-framerate", "10", "-i"];
    args.extend([still.to_str().unwrap(), "-loop", "1", "-framerate", "10"]);
    args.extend([
        "-i",
        man_s,
        "-filter_complex",
        graph,
        "-t",
        &secs,
        "-r",
        "10",
    ]);
    let x264 = super::command::x264_args("veryfast");
    let x264: Vec<String> = x264
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.extend(x264.iter().map(String::as_str));
    args.push(clip.to_str().unwrap());
    ffmpeg(&args);
    frames(&["-i", clip.to_str().unwrap()], "", 768, 576)
}

#[test]
fn a_person_standing_still_is_left_to_the_full_pass_and_never_leaves() {
    let clip = standing();
    assert_eq!(clip.len() as u32, STANDING_S * FPS);
    let e = engine();
    // Shorter than the defaults (3 s still, a full pass every 10 s), so a
    // short clip holds two periodic full passes.
    let cfg = MotionConfig {
        stationary_s: 1,
        full_pass_s: 3,
        ..gated()
    };
    let with = run(&e, &clip, &cfg);
    let without = run(
        &e,
        &clip,
        &MotionConfig {
            stationary_s: 0,
            ..cfg.clone()
        },
    );
    eprintln!(
        "standing {} frames: stationary {} runs {:?}; without {} runs; entered {:?} / {:?}",
        clip.len(),
        with.detector_runs,
        with.per_frame,
        without.detector_runs,
        with.entered,
        without.entered
    );
    // Found at the first full pass, entered once, never left.
    for r in [&with, &without] {
        assert_eq!((r.entered.len(), r.left), (1, 0), "{r:?}");
        assert_eq!(r.entered[0].0, 0);
    }
    // Without the rule the tracked person costs a run on every frame.
    assert_eq!(without.detector_runs, clip.len() as u64, "{without:?}");
    // With it: crops until the person has stood still for `stationary_s`,
    // then a full pass every `full_pass_s` (and, should a pass miss the
    // person, one crop to find them again).
    let frames_still = u64::from(cfg.stationary_s * FPS);
    let passes = u64::from(STANDING_S.div_ceil(cfg.full_pass_s));
    let bound = frames_still + 2 * passes;
    assert!(
        with.detector_runs <= bound,
        "{} > {bound}",
        with.detector_runs
    );
    assert!(with.detector_runs * 3 <= without.detector_runs, "{with:?}");
}

#[test]
fn gating_keeps_the_people_crossing_a_quiet_street_and_skips_the_quiet() {
    let clip = crossings();
    assert_eq!(clip.len() as u32, CROSSINGS_S * FPS);
    let e = engine();
    let base = run(&e, &clip, &ungated());
    let with = run(&e, &clip, &gated());
    assert!(base.entered.len() >= 4, "{base:?}");
    // Measured: 10 of 10 matched, 12 gated entries against 10.
    assert_recall_kept("crossings", &base, &with);
    // Where gating saves: frames with no walker in view. Right after a
    // crossing the tracker still looks for the people who left (it
    // predicts them for `max_lost_ms`, 3 s, after their last sighting, and
    // crops around a track a crop finds again go on), so "quiet" is
    // stated two ways: no walker in view, and no walker in view nor lost
    // within `max_lost_ms`.
    let lost_ms = Config::default().tracker.max_lost_ms;
    let empty = |ms: i64, tail: i64| {
        CROSSINGS.iter().all(|&(at, _)| {
            let from = i64::from(at) * 1000;
            ms < from || ms >= from + i64::from(WALK_S) * 1000 + tail
        })
    };
    let on = |r: &Run, tail: i64| -> (u64, u64) {
        let frames = r.per_frame.iter().enumerate();
        let quiet = frames.filter(|(i, _)| empty(*i as i64 * 1000 / i64::from(FPS), tail));
        quiet.fold((0, 0), |(n, runs), (_, k)| (n + 1, runs + k))
    };
    let ((frames, base_runs), (_, runs)) = (on(&base, 0), on(&with, 0));
    let ((still, still_base), (_, still_runs)) = (on(&base, lost_ms), on(&with, lost_ms));
    eprintln!(
        "crossings: no walker in view: {frames} frames, ungated {base_runs} runs, gated {runs}; \
         nor lost: {still} frames, ungated {still_base}, gated {still_runs}; gated per frame {:?}",
        with.per_frame
    );
    assert_eq!(
        (base_runs, still_base),
        (frames, still),
        "ungated: a run a frame"
    );
    assert!(still >= 15, "{still} quiet frames");
    // Measured: 1 run (the first frame's full pass) in the 15 quiet frames,
    // and 6 in the 20 without a walker in view (the 5 more are between the
    // crossings, where the tracker still looks for the people who left).
    assert!(still_runs * 5 <= still, "{still_runs} runs in {still}");
    assert!(runs * 2 <= frames, "{runs} runs in {frames}");
}

/// Waits up to 20 s for `what` to hold.
async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_camera_is_not_held_up_while_every_runner_is_busy() {
    use super::detect::{Mailbox, PendingFrame};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.paths.data_dir = dir.path().to_path_buf();
    cfg.ai.workers = 1;
    let engine = new_engine(&cfg);
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
    let store =
        crate::nvr::store::Store::open(&dir.path().join("db.sqlite"), clock.clone(), 16).unwrap();
    let ctx = Arc::new(super::Ctx::new(&cfg, store, engine.clone(), clock));
    let (mailbox, stats) = (
        Arc::new(Mailbox::default()),
        Arc::new(CameraStats::default()),
    );
    let (_settings, motion) = tokio::sync::watch::channel(cfg.ingest.motion.camera("quiet"));
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(super::detect::run(
        ctx,
        "quiet".into(),
        mailbox.clone(),
        stats.clone(),
        motion,
        stop.clone(),
    ));
    let clip = still_clip(4, "");
    let frame = |i: usize| PendingFrame {
        image: Arc::new(clip[i].clone()),
        at_ms: i as i64 * 1000 / i64::from(FPS),
        read: std::time::Instant::now(),
    };
    // The first frame's full pass waits for the runner another camera
    // holds; a frame that comes meanwhile is still checked (noise: nothing
    // to look at, done, not dropped), and the planned pass still runs
    // (planning it counted it as done).
    let held = engine.camera_turn().await.unwrap();
    mailbox.put(frame(0));
    until("the first frame taken", || mailbox.is_empty()).await;
    assert!(!mailbox.put(frame(1)));
    until("frame 1 checked", || stats.gated.load(Relaxed) == 1).await;
    assert_eq!(stats.analysed.load(Relaxed), 0, "the runner is held");
    drop(held);
    until("the first full pass", || stats.analysed.load(Relaxed) == 1).await;
    assert_eq!(stats.full_passes.load(Relaxed), 1);
    // Now another camera's detector holds every runner: the quiet camera's
    // noise is still checked and skipped, frame by frame, none dropped.
    let held = engine.camera_turn().await.unwrap();
    let last = clip.len() - 7;
    for i in 2..last {
        assert!(!mailbox.put(frame(i)), "frame {i} replaced one never taken");
        until("the motion check", || stats.gated.load(Relaxed) == i as u64).await;
    }
    assert_eq!(stats.dropped.load(Relaxed), 0);
    assert_eq!(
        stats.analysed.load(Relaxed),
        1,
        "no detector ran on the noise"
    );
    // Something moves (a dark figure walking in): that frame waits for the
    // runner; the next, moving too, is planned meanwhile; the one after
    // that waits in the mailbox. A camera behind by a frame or two loses
    // none: when the runner comes back they are analysed in the order read.
    let walker = |i: usize| {
        let mut f = frame(i);
        let mut img = (*f.image).clone();
        let x0 = 100 + 60 * (i - last) as u32;
        for y in 200..420 {
            for x in x0..x0 + 70 {
                img.put_pixel(x, y, image::Rgb([20, 20, 24]));
            }
        }
        f.image = Arc::new(img);
        f
    };
    assert!(!mailbox.put(walker(last)));
    until("the moving frame taken", || mailbox.is_empty()).await;
    assert!(!mailbox.put(walker(last + 1)));
    until("the next moving frame planned", || mailbox.is_empty()).await;
    assert!(!mailbox.put(walker(last + 2)), "nothing was waiting");
    assert_eq!(stats.analysed.load(Relaxed), 1, "the runner is held");
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    let done = || n(&stats.analysed) + n(&stats.gated) + n(&stats.dropped);
    drop(held);
    until("every frame analysed, checked or given up", || {
        done() == (last + 3) as u64
    })
    .await;
    assert_eq!(n(&stats.dropped), 0, "a frame given up: {stats:?}");
    assert_eq!(n(&stats.analysed), 4, "{stats:?}");
    // Three frames behind is the bound: with one in flight, one planned
    // and one in the mailbox, a newer frame replaces the waiting one (the
    // camera reader counts it dropped, as here).
    let held = engine.camera_turn().await.unwrap();
    assert!(!mailbox.put(walker(last + 3)));
    until("the moving frame taken", || mailbox.is_empty()).await;
    assert!(!mailbox.put(walker(last + 4)));
    until("the next moving frame planned", || mailbox.is_empty()).await;
    assert!(!mailbox.put(walker(last + 5)), "nothing was waiting");
    assert!(mailbox.put(walker(last + 6)), "three behind: one replaced");
    stats.dropped.fetch_add(1, Relaxed);
    drop(held);
    until("every frame analysed, checked or given up", || {
        done() == clip.len() as u64
    })
    .await;
    assert_eq!(n(&stats.dropped), 1, "{stats:?}");
    assert_eq!(n(&stats.analysed), 7, "{stats:?}");
    stop.cancel();
    worker.await.unwrap();
}

/// The boxes of the people (class `person`, score 0.35 or more) in `found`.
fn people_in(found: Vec<crate::ai::nms::RawDetection>, person: u32) -> Vec<[f32; 4]> {
    found
        .into_iter()
        .filter(|d| d.class_id == person && d.score >= 0.35)
        .map(|d| d.bbox)
        .collect()
}

/// How many boxes of `want` have a box in `got` overlapping them by
/// `min_iou` or more (each matched to its best, which leaves `got`): what is
/// left in `got` matched nothing.
fn take_matches(want: &[[f32; 4]], got: &mut Vec<[f32; 4]>, min_iou: f32) -> usize {
    let mut n = 0;
    for p in want {
        let iou = |b: &[f32; 4]| crate::ai::nms::iou(p, b);
        let best = (0..got.len()).max_by(|&i, &j| iou(&got[i]).total_cmp(&iou(&got[j])));
        if let Some(k) = best.filter(|&k| iou(&got[k]) >= min_iou) {
            got.swap_remove(k);
            n += 1;
        }
    }
    n
}

/// A camera's full pass runs in the input its frame fits (416x320 for
/// vtest's 4:3, no padding bands) instead of the square: on real footage it
/// must see the people the square sees, in the same places.
#[test]
fn a_fitted_full_pass_sees_the_people_the_square_one_sees() {
    let det = engine().detector(&Params::default()).unwrap();
    assert_eq!(det.fitted_shape(768, 576), (416, 320));
    let person = det.class_of("person").unwrap();
    let people = |found| people_in(found, person);
    let (mut square, mut fitted, mut same) = (0, 0, 0);
    for img in vtest(12).iter().step_by(6) {
        let a = people(det.detect(img, 0.2, 0.45).unwrap());
        let mut b = people(
            det.detect_window_fitted(img, crate::ai::detector::all_of(img), 0.2, 0.45)
                .unwrap(),
        );
        (square, fitted) = (square + a.len(), fitted + b.len());
        same += take_matches(&a, &mut b, 0.7);
    }
    eprintln!("vtest people: square {square}, fitted {fitted}, same box {same}");
    assert!(
        det.fitted_shapes().contains(&(416, 320)),
        "the fitted plan ran"
    );
    assert!(square >= 20, "vtest has people in view: {square}");
    assert!(
        same * 10 >= square.max(fitted) * 9,
        "square {square}, fitted {fitted}, same box {same}"
    );
}

/// The int8 detector the cameras run on onnxruntime (`[ingest]
/// camera_model = "auto"`) must find the people the f32 model finds, in the
/// same places, on real footage: its recall is measured here before it is
/// used, as the camera's full pass runs it (fitted input, onnxruntime).
#[test]
fn the_int8_detector_finds_the_people_the_f32_one_finds() {
    use crate::ai::backend::{onnxruntime::tests::ort, Backend};
    use crate::ai::detector::{all_of, Detector};
    let cfg = test_config();
    let catalog = crate::catalog::Catalog::open(&cfg.paths.models_dir).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ort(2));
    let load = |id: &str| {
        let entry = catalog.get(id).expect("installed by models/fetch.sh");
        Detector::load(backend.as_ref(), &catalog, entry)
            .unwrap()
            .fitting(backend.clone())
    };
    let (f32_det, int8_det) = (load("yolov4-tiny-416"), load("yolov4-tiny-416-int8"));
    let person = f32_det.class_of("person").unwrap();
    let people = |det: &Detector, img: &RgbImage| {
        people_in(
            det.detect_window_fitted(img, all_of(img), 0.2, 0.45)
                .unwrap(),
            person,
        )
    };
    let (mut reference, mut found, mut extra) = (0, 0, 0);
    for img in vtest(16).iter().step_by(2) {
        let want = people(&f32_det, img);
        let mut got = people(&int8_det, img);
        reference += want.len();
        found += take_matches(&want, &mut got, 0.5);
        extra += got.len();
    }
    eprintln!("vtest people: f32 {reference}, found by int8 {found}, int8 extra {extra}");
    assert!(reference >= 150, "vtest has people in view: {reference}");
    assert!(
        found * 100 >= reference * 97,
        "int8 recall {found} of {reference}"
    );
    assert!(
        extra * 100 <= reference * 5,
        "int8 found {extra} people f32 did not"
    );
}
