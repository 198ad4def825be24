//! Motion gating in the running daemon: a quiet camera (Debian's real
//! still of a street façade, temporal sensor noise, H.264) runs the
//! detector only for its periodic full pass; the same camera with gating
//! turned off in the config file runs it on every frame it takes. The
//! counters are read where operators read them (the camera status).

use std::path::Path;
use std::time::Duration;

use crate::common::camera::{add_camera, get_auth};
use crate::common::{temp_dir, wait_for, Daemon};

/// 10 s of the real still with sensor noise, as a quiet camera would send it.
fn quiet_clip() -> std::path::PathBuf {
    let clip = temp_dir("quiet").join("quiet.mp4");
    opennvr_edge::ingest::demo::quiet_clip(Path::new("ffmpeg"), 10, "", &clip).expect("ffmpeg");
    clip
}

#[test]
fn a_quiet_camera_is_gated_and_gating_can_be_turned_off_per_camera() {
    let conf = temp_dir("motion-conf").join("config.toml");
    std::fs::write(&conf, "[ingest.motion.cameras.plain]\nenabled = false\n").unwrap();
    let d = Daemon::start(&[("OPENNVR_CONFIG", conf.to_str().unwrap())]);
    let token = d.admin_token();
    let url = format!("file://{}", quiet_clip().display());
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
