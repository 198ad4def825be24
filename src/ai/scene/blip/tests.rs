//! BLIP on tract against transformers: the committed tiny-random BLIP
//! (tests/fixtures/blip-tiny, made by `models/export-blip.py --tiny-random`)
//! must give transformers' own `generate` token ids, greedy and beam search,
//! on real pictures, and its tokenizer the reference tokenizer's ids and
//! text. Then the engine's side: installed means listed and loaded, altered
//! means an error, absent means none (the grounded description answers).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::search::Settings;
use super::Blip;
use crate::ai::backend::TractBackend;
use crate::ai::engine::Engine;
use crate::catalog::Catalog;
use crate::clock::ManualClock;
use crate::config::{CaptionerConfig, Config};

const ID: &str = "blip-tiny-random-s14";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blip-tiny")
}

fn references() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("references.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A reference picture: committed beside the model, or a test sample of
/// the models dir (`OPENNVR_TEST_MODELS_DIR`, else models/dist).
fn picture(name: &str) -> image::RgbImage {
    let local = fixture_dir().join(name);
    let path = if local.is_file() {
        local
    } else {
        std::env::var_os("OPENNVR_TEST_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dist"))
            .join("samples")
            .join(name)
    };
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", path.display()))
        .to_rgb8()
}

fn tiny() -> Blip {
    let catalog = Catalog::open(&fixture_dir()).unwrap();
    let entry = catalog.get(ID).expect("tiny BLIP in the fixture manifest");
    Blip::load(&catalog, entry, &CaptionerConfig::default()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn settings(blip: &Blip, refs: &Value, mode: &str) -> Settings {
    let g = &refs["generation"][mode];
    Settings {
        max_length: g["max_length"].as_u64().unwrap() as usize,
        beams: g["num_beams"].as_u64().unwrap() as usize,
        length_penalty: g
            .get("length_penalty")
            .and_then(Value::as_f64)
            .unwrap_or(1.0),
        ..blip.settings()
    }
}

fn parity(mode: &str) {
    let blip = tiny();
    let refs = references();
    let set = settings(&blip, &refs, mode);
    let images = refs["images"].as_array().unwrap();
    assert!(images.len() >= 2);
    for r in images {
        let name = r["image"].as_str().unwrap();
        let got = blip.generate(&picture(name), &set).unwrap();
        assert_eq!(got, ids(&r[mode]), "{mode} ids on {name}");
        let text = blip.vocab().decode(&got).unwrap();
        assert_eq!(
            text,
            r[mode]["text"].as_str().unwrap(),
            "{mode} text on {name}"
        );
    }
}

#[test]
fn greedy_captions_equal_transformers() {
    parity("greedy");
}

#[test]
fn beam_search_captions_equal_transformers() {
    parity("beam");
}

#[test]
fn tokenizer_round_trips_like_the_reference() {
    let blip = tiny();
    for s in references()["sentences"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let want = ids(s);
        assert_eq!(blip.vocab().encode(text).unwrap(), want, "{text}");
        assert_eq!(
            blip.vocab().decode(&want).unwrap(),
            s["decoded"].as_str().unwrap()
        );
    }
}

/// The fixture copied into a fresh models dir, so a test may alter it.
fn installed() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixture_dir()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, d.path().join(f.file_name().unwrap())).unwrap();
    }
    d
}

fn engine(models: &Path) -> Engine {
    Engine::new(
        &Config::default(),
        Catalog::open(models).unwrap(),
        Arc::new(TractBackend),
        Arc::new(ManualClock::new(0)),
    )
}

#[test]
fn the_engine_captions_with_the_installed_blip_and_lists_it() {
    let models = installed();
    let e = engine(models.path());
    assert_eq!(e.captioner_id(), Some(ID));
    let cap = e.captioner().unwrap().expect("installed");
    assert_eq!(cap.model_id(), ID);
    let refs = references();
    let first = &refs["images"][0];
    let text = cap
        .caption(&picture(first["image"].as_str().unwrap()))
        .unwrap();
    assert_eq!(text, first["greedy"]["text"].as_str().unwrap());
    let adapters = e.adapters();
    let a = adapters.iter().find(|a| a.id == ID).expect("listed");
    assert_eq!(a.tasks, vec!["scene_description"]);
    assert!(a.loaded);
}

#[test]
fn an_altered_tokenizer_is_an_error_and_no_blip_is_none() {
    let models = installed();
    let tok = models.path().join(format!("{ID}-tokenizer.json"));
    let mut bytes = std::fs::read(&tok).unwrap();
    bytes.push(b'\n');
    std::fs::write(&tok, bytes).unwrap();
    let e = engine(models.path());
    assert!(e.captioner().is_err(), "installed but altered");

    std::fs::remove_file(models.path().join(format!("{ID}-encoder.onnx"))).unwrap();
    let e = engine(models.path());
    assert!(e.captioner().unwrap().is_none(), "not installed");
    assert!(
        e.adapters().iter().all(|a| a.id != ID),
        "absent from /adapters"
    );
}

#[test]
fn settings_over_the_caps_refuse_to_load() {
    let catalog = Catalog::open(&fixture_dir()).unwrap();
    let entry = catalog.get(ID).unwrap();
    for cfg in [
        CaptionerConfig {
            num_beams: 9,
            ..CaptionerConfig::default()
        },
        CaptionerConfig {
            num_beams: 0,
            ..CaptionerConfig::default()
        },
        CaptionerConfig {
            max_length: 10_000,
            ..CaptionerConfig::default()
        },
    ] {
        assert!(Blip::load(&catalog, entry, &cfg).is_err(), "{cfg:?}");
    }
}

/// The caption benchmark of docs/performance.md (not a test: run by hand
/// with `OPENNVR_BLIP_BENCH_DIR` naming a base-sized export from
/// `models/export-blip.py --base-random`, and `--ignored --nocapture`).
#[test]
#[ignore = "benchmark: needs OPENNVR_BLIP_BENCH_DIR"]
fn bench_caption_latency() {
    let dir =
        PathBuf::from(std::env::var_os("OPENNVR_BLIP_BENCH_DIR").expect("OPENNVR_BLIP_BENCH_DIR"));
    crate::ai::backend::TractBackend::set_threads(2);
    let catalog = Catalog::open(&dir).unwrap();
    let entry = catalog.entries()[0].clone();
    let t0 = std::time::Instant::now();
    let blip = Blip::load(&catalog, &entry, &CaptionerConfig::default()).unwrap();
    let load = t0.elapsed();
    let img = picture("bus-203x270.png");
    let set = blip.settings();
    blip.generate(
        &img,
        &Settings {
            max_length: 3,
            ..set
        },
    )
    .unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let ids = blip.generate(&img, &set).unwrap();
        println!("caption: {} tokens in {:?}", ids.len(), t.elapsed());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .collect();
    println!("load {load:?}; {rss:?}");
}
