//! Motion gating in the running daemon: a quiet camera (Debian's real
//! still of a street façade, temporal sensor noise, H.264) runs the
//! detector only for its periodic full pass; the same camera with gating
//! turned off in the config file runs it on every frame it takes. The
//! counters are read where operators read them (the camera status). Masks
//! set through the camera API reach the running camera without a restart.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::camera::{add_camera, get_auth};
use crate::common::client;
use crate::common::{temp_dir, wait_for, Daemon};

/// 10 s of the real still with sensor noise, as a quiet camera would send
/// it, with the ffmpeg filters `more` after the noise.
fn quiet_clip(more: &str) -> std::path::PathBuf {
    let clip = temp_dir("quiet").join("quiet.mp4");
    opennvr_edge::ingest::demo::quiet_clip(Path::new("ffmpeg"), 10, more, &clip).expect("ffmpeg");
    clip
}

#[test]
fn a_quiet_camera_is_gated_and_gating_can_be_turned_off_per_camera() {
    let conf = temp_dir("motion-conf").join("config.toml");
    std::fs::write(&conf, "[ingest.motion.cameras.plain]\nenabled = false\n").unwrap();
    let d = Daemon::start(&[("OPENNVR_CONFIG", conf.to_str().unwrap())]);
    let token = d.admin_token();
    let url = format!("file://{}", quiet_clip("").display());
    add_camera(&d, &token, "gated", &url, 5.0);
    add_camera(&d, &token, "plain", &url, 5.0);
    let status = |cam: &str| get_auth(&d, &token, &format!("/api/v1/cameras/{cam}/status"));
    let (g, p) = wait_for(Duration::from_secs(90), || {
        let (g, p) = (status("gated"), status("plain"));
        (g["gated"].as_u64()? >= 15 && p["analysed"].as_u64()? >= 3).then_some((g, p))
    })
    .unwrap_or_else(|| panic!("{} / {}", status("gated"), status("plain")));
    // Gated: the first frame's full pass, no motion in the noise, no crops.
    assert_eq!(g["regions"], 0, "{g}");
    assert!(g["full_passes"].as_u64().unwrap() >= 1, "{g}");
    // Every detector run was a full pass (one may be in flight: counted
    // before it runs, `analysed` after).
    let (runs, full) = (
        g["analysed"].as_u64().unwrap(),
        g["full_passes"].as_u64().unwrap(),
    );
    assert!(runs <= full && full <= runs + 1, "{g}");
    // Off: every frame taken is a plain detector run; no gating counters.
    assert_eq!(
        (&p["gated"], &p["regions"], &p["full_passes"]),
        (&0.into(), &0.into(), &0.into()),
        "{p}"
    );
}

/// A white square (not a person) hopping along the top left of the quiet
/// still, a new place every 0.2 s: motion the whole time, in x 0.05..0.51
/// and y 0.1..0.22 of the frame.
fn sign_clip() -> std::path::PathBuf {
    let boxes: String = (0..8)
        .map(|k| {
            let (x, t0) = (40 + 40 * k, f64::from(k) * 0.2);
            format!(
                ",drawbox=x={x}:y=60:w=60:h=60:color=white:t=fill:enable='between(mod(t,1.6),{t0},{:.2})'",
                t0 + 0.19
            )
        })
        .collect();
    quiet_clip(&boxes)
}

#[test]
fn masks_set_through_the_api_replace_the_files_and_reach_the_running_camera() {
    // The config file masks where the square hops.
    let path = "[[0, 0], [0.6, 0], [0.6, 0.3], [0, 0.3]]";
    let conf = temp_dir("masks-conf").join("config.toml");
    let toml = format!("[ingest]\npoll_ms = 200\n[ingest.motion.cameras.sign]\nmasks = [{path}]\n");
    std::fs::write(&conf, toml).unwrap();
    let d = Daemon::start(&[("OPENNVR_CONFIG", conf.to_str().unwrap())]);
    let token = d.admin_token();
    add_camera(
        &d,
        &token,
        "sign",
        &format!("file://{}", sign_clip().display()),
        5.0,
    );
    let status = || get_auth(&d, &token, "/api/v1/cameras/sign/status");
    let count = |s: &Value, k: &str| s[k].as_u64().unwrap_or(0);
    let set = |motion: Value| {
        let r = client()
            .put(d.nvr_url("/api/v1/cameras/sign"))
            .bearer_auth(&token)
            .json(&json!({ "motion": motion }))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "PUT motion {motion}");
    };
    // `frames` gated from `from` on, once `n` more were gated.
    let gated_more = |from: &Value, n: u64| {
        wait_for(Duration::from_secs(60), || {
            let s = status();
            (count(&s, "gated") >= count(from, "gated") + n).then_some(s)
        })
        .unwrap_or_else(|| panic!("{n} more frames gated after {from}: {}", status()))
    };
    // 1. The file's mask: the hopping square is not motion, no crop runs.
    let first = wait_for(Duration::from_secs(60), || {
        let s = status();
        (count(&s, "gated") >= 10 && s["ffmpeg_pid"].is_u64()).then_some(s)
    })
    .unwrap_or_else(|| panic!("gated frames: {}", status()));
    assert_eq!(count(&first, "regions"), 0, "{first}");
    // 2. Settings set through the API replace the file's entry as a whole:
    // no masks, so the square is motion and crops run around it.
    set(json!({"masks": []}));
    let unmasked = wait_for(Duration::from_secs(60), || {
        let s = status();
        (count(&s, "regions") >= 5).then_some(s)
    })
    .unwrap_or_else(|| panic!("crops around the square: {}", status()));
    // 3. A mask set through the API, from the next frames on: frames are
    // gated again, and no crop runs while the square goes on hopping.
    set(json!({ "masks": [serde_json::from_str::<Value>(path).unwrap()] }));
    let settled = gated_more(&unmasked, 3);
    let later = gated_more(&settled, 10);
    assert_eq!(
        count(&later, "regions"),
        count(&settled, "regions"),
        "{settled} then {later}"
    );
    // All along one ffmpeg: no setting restarted the camera (or its recording).
    for s in [&unmasked, &settled, &later] {
        assert_eq!(s["ffmpeg_pid"], first["ffmpeg_pid"], "{s}");
        assert_eq!(count(s, "restarts"), 0, "{s}");
    }
}
